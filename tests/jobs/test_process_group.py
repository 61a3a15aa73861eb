"""The keeper a registered command runs under (jobs.process_group): the command's whole group ends on a stop, however
the stop comes, and the keeper never dies leaving the command running."""

import os
import signal
import subprocess
import sys
import time

from tests.jobs.conftest import ROOT, alive
from tests.waiting import wait_for

STUBBORN = (  # a training that ignores SIGTERM, as one stuck in a step does, and says who it is
    "import os, pathlib, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))\n"
    "time.sleep(300)\n"
)


def start_keeper(tmp_path, grace: float = 1.0) -> tuple[subprocess.Popen, int]:
    pid_file = tmp_path / "command.pid"
    keeper = subprocess.Popen(
        [sys.executable, "-m", "jobs.process_group", str(os.getpid()), str(grace), sys.executable, "-c", STUBBORN, str(pid_file)],
        cwd=ROOT,
    )
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), 30, "the command to start")
    return keeper, int(pid_file.read_text())


def test_a_burst_of_stop_signals_ends_the_command_and_the_keeper_within_the_grace(tmp_path):
    """The keeper's handler set a threading.Event: a second SIGTERM while it held the Event's lock hung the keeper
    for good, and its command trained on."""
    keeper, command = start_keeper(tmp_path)

    for _ in range(50):
        keeper.send_signal(signal.SIGTERM)
        time.sleep(0.002)

    assert keeper.wait(timeout=15) == 128 + signal.SIGKILL  # the command ignored SIGTERM: killed after the grace
    wait_for(lambda: not alive(command), 5, "the command to be gone")


def test_a_command_that_ends_by_itself_gives_its_exit_code(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "jobs.process_group", str(os.getpid()), "1", sys.executable, "-c", "raise SystemExit(7)"],
        cwd=ROOT,
        timeout=30,
    )

    assert done.returncode == 7


def test_a_command_that_cannot_start_says_why_in_its_output(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "jobs.process_group", str(os.getpid()), "1", str(tmp_path / "no-such-program")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert done.returncode == 127
    assert done.stdout.startswith("tunedeck: the command could not start: [Errno 2] No such file or directory")
