"""Whether some process holds a lock file: the one probe the store server's claim and the worker lock share."""

import fcntl
import os
from pathlib import Path


def held(path: Path | str) -> bool:
    """Whether a process holds an exclusive flock on the file: a shared probe that writes nothing and lets go at
    once, so it never turns away a process that is taking the lock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
