"""The data directory's worker lock: held by the one auto-started worker."""

import fcntl
import os
import time
from typing import IO

from core import flocks
from core.settings import Settings

LOCK_NAME = "worker.lock"


def hold_worker_lock(settings: Settings, wait: float = 1.0) -> IO | None:
    """The open lock file if this process now holds the lock (keep it open), else None.

    A lock that stays taken for `wait` seconds belongs to a worker; one taken only for a moment is
    worker_running() looking, which must not turn a starting worker away.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(settings.data_dir / LOCK_NAME, "a+")
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                return None
            time.sleep(0.02)
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def worker_running(settings: Settings) -> bool:
    """Whether a worker holds the lock."""
    return flocks.held(settings.data_dir / LOCK_NAME)
