"""The data directory's worker locks: `worker.lock`, held by the one auto-started worker, and one file per worker
started by hand under `workers/`, so that nothing starts an auto worker beside it."""

import contextlib
import os
import time
from pathlib import Path
from typing import IO

from core import flocks
from core.settings import Settings

LOCK_NAME = "worker.lock"
WORKERS = "workers"  # <pid>.lock, held by each worker started by hand while it runs
STALE_SECONDS = 60.0  # an unheld file this old is a worker gone: removed by the next one that starts


def hold_worker_lock(settings: Settings, wait: float = 1.0) -> IO | None:
    """The open lock file if this process now holds the lock (keep it open), else None.

    A lock that stays taken for `wait` seconds belongs to a worker; one taken only for a moment is
    worker_running() looking, which must not turn a starting worker away.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(settings.data_dir / LOCK_NAME, "a+")
    if not flocks.take(handle, wait):
        handle.close()
        return None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def announce_worker(settings: Settings) -> IO:
    """Say that a worker started by hand runs here, for as long as the returned file stays open."""
    folder = settings.data_dir / WORKERS
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.glob("*.lock"):  # workers gone without removing theirs
        with contextlib.suppress(OSError):
            if not flocks.held(path) and time.time() - path.stat().st_mtime > STALE_SECONDS:
                path.unlink()
    handle = open(folder / f"{os.getpid()}.lock", "a+")
    if not flocks.take(handle, wait=1.0):  # only this process uses its own file: a worker_running() look holds it
        handle.close()
        raise BlockingIOError(f"{handle.name} stayed locked")
    return handle


def worker_running(settings: Settings) -> bool:
    """Whether a worker runs on this data directory: the auto-started one, or one started by hand."""
    return bool(_held_locks(settings))


def hand_started_worker(settings: Settings) -> bool:
    return bool(_held_locks(settings, auto=False))


def worker_pids(settings: Settings) -> list[int]:
    """The process IDs of the workers running on this data directory (a lock file's text outlives its worker: only
    held ones count)."""
    pids = []
    for path in _held_locks(settings):
        with contextlib.suppress(OSError, ValueError):
            pids.append(int(path.read_text().strip() or path.stem))
    return pids


def _held_locks(settings: Settings, auto: bool = True) -> list[Path]:
    """The lock files a live worker holds: the auto-started one's (if `auto`), then each started by hand."""
    candidates = [settings.data_dir / LOCK_NAME] if auto else []
    folder = settings.data_dir / WORKERS
    if folder.is_dir():
        candidates += sorted(folder.glob("*.lock"))
    return [path for path in candidates if flocks.held(path)]
