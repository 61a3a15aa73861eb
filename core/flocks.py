"""Lock files: taking one within a time, and whether some process holds one (the store server's claim and the
worker locks share both)."""

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO


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


def take(file: IO | int, wait: float, give_up: Callable[[], bool] = lambda: False, every: float = 0.02) -> bool:
    """Take an exclusive flock on the open file, trying for `wait` seconds, or until give_up() says the holder is
    there to stay; whether it was taken. Someone's held() probe holds it shared for a moment: that is no holder."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if give_up() or time.monotonic() >= deadline:
                return False
            time.sleep(every)
