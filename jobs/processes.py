"""Child processes that never outlive their parent and stop politely, then firmly."""

import ctypes
import signal
import subprocess


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (a no-op elsewhere: heartbeats still catch it)."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop(process: subprocess.Popen, grace: float = 20) -> int:
    """SIGTERM, then SIGKILL after `grace` seconds; returns the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
