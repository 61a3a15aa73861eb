"""Who is running a job: 'host:pid', so a lost worker on this machine can be recognised at once."""

import os
import socket


def worker_id(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def is_local_and_dead(worker: str | None) -> bool:
    """True when the worker ran on this machine and its process no longer exists."""
    host, _, pid = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
