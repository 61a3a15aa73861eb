"""`python -m jobs.process_group PARENT_PID GRACE COMMAND...`: a registered training command in a process group of its own,
ended as a whole.

A wrapper (`bash train.sh`, `accelerate launch`) does not pass a SIGTERM on to the python it started, and Linux's
parent-death signal reaches a direct child only: a cancelled run's training, or a killed worker's, went on orphaned,
holding the GPU. This process asks for SIGTERM when the training process above it dies, and on SIGTERM or SIGINT (a
cancel, a shutdown, that death) stops the command's whole group: SIGTERM, then SIGKILL after GRACE seconds. Whatever
of the group is left when the command ends is killed too. Its exit code is the command's (128 + N for signal N).
"""

import os
import signal
import subprocess
import sys
import time

from jobs.processes import ask_for_signal_on_parent_death

GRACE = 20.0  # what the trainer gives it
COULD_NOT_START = 127
NOT_STARTED = "tunedeck: the command could not start: "  # the line the trainer reads back as its reason
POLL = 0.2
_stop_requested = False


def _request_stop(signum, frame) -> None:
    """A plain flag: a handler that took a lock (an Event's) deadlocked when a second signal came while it held it."""
    global _stop_requested
    _stop_requested = True


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except (ProcessLookupError, PermissionError):  # all gone already
        pass


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _run(child: subprocess.Popen, grace: float) -> int:
    """The command's exit code; on a stop, its group is asked to stop and killed `grace` seconds later if it has not.
    The grace is the whole group's: a wrapper dies of SIGTERM at once, while the python under it saves a checkpoint."""
    deadline, code = None, None
    while True:
        if code is None:
            try:
                code = child.wait(timeout=POLL)
            except subprocess.TimeoutExpired:
                pass
        else:
            time.sleep(POLL)
        if _stop_requested and deadline is None:
            _signal_group(child.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
        if code is not None and (deadline is None or not _group_alive(child.pid)):
            return code  # ended by itself, or stopped with all its group
        if deadline is not None and time.monotonic() > deadline:
            _signal_group(child.pid, signal.SIGKILL)
            return child.wait()


def main(argv: list[str]) -> int:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # first: from here on a stop is never lost, and
        signal.signal(signum, _request_stop)  # never ends this process with the command left running
    parent, grace, command = int(argv[0]), float(argv[1]), argv[2:]
    ask_for_signal_on_parent_death(signal.SIGTERM)
    if os.getppid() != parent or _stop_requested:  # it died, or asked to stop, before the request was in place
        return COULD_NOT_START
    try:
        child = subprocess.Popen(command, start_new_session=True)  # stdout, stderr and the folder are ours
    except OSError as error:
        print(f"{NOT_STARTED}{error}", flush=True)
        return COULD_NOT_START
    code = _run(child, grace)
    _signal_group(child.pid, signal.SIGKILL)  # whatever the command left behind in its group
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
