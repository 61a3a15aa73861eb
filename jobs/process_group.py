"""`python -m jobs.process_group PARENT_PID COMMAND...`: a registered training command in a process group of its own,
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
import threading

from jobs.processes import ask_for_signal_on_parent_death

GRACE = 20.0
COULD_NOT_START = 127


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except (ProcessLookupError, PermissionError):  # all gone already
        pass


def _end(child: subprocess.Popen, grace: float) -> None:
    """The group asked to stop, and killed if its command has not ended within grace seconds."""
    _signal_group(child.pid, signal.SIGTERM)
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass


def main(argv: list[str]) -> int:
    parent, command = int(argv[0]), argv[1:]
    ask_for_signal_on_parent_death(signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request was in place
        return COULD_NOT_START
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        child = subprocess.Popen(command, start_new_session=True)  # stdout, stderr and the folder are ours
    except OSError as error:
        print(f"could not start: {error}", flush=True)
        return COULD_NOT_START
    while child.poll() is None:
        if stopping.wait(0.2):
            _end(child, GRACE)
            break
    _signal_group(child.pid, signal.SIGKILL)  # a stop not heeded, or a process the command left behind
    code = child.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
