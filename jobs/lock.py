"""The data directory's worker lock: held by the one auto-started worker."""

import fcntl
import os
from typing import IO

from core.settings import Settings

LOCK_NAME = "worker.lock"


def hold_worker_lock(settings: Settings) -> IO | None:
    """The open lock file if this process now holds the lock (keep it open), else None."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(settings.data_dir / LOCK_NAME, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def worker_running(settings: Settings) -> bool:
    lock = hold_worker_lock(settings)
    if lock is None:
        return True
    lock.close()
    return False
