"""Child processes that never outlive their parent and stop politely, then firmly."""

import ctypes
import signal
import subprocess


def _prctl():
    try:
        return ctypes.CDLL(None).prctl
    except (OSError, AttributeError):  # not Linux: heartbeats still catch an orphan
        return None


_PRCTL = _prctl()  # looked up here, in the parent: a forked child of a threaded process must not dlopen


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (Popen's preexec_fn: runs in the child before exec)."""
    ask_for_signal_on_parent_death(signal.SIGKILL)


def ask_for_signal_on_parent_death(signum: int) -> None:
    """PR_SET_PDEATHSIG: this process gets signum when the thread that started it ends."""
    if _PRCTL is not None:
        _PRCTL(1, signum)


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
