"""What a queued training job does in the worker: start the run's process, keep its heartbeat, stop it on cancel."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from core.errors import InvalidTransitionError, TuneDeckError, failure_text
from core.identity import worker_id
from core.logs import LogFollower, log_path, read_log
from core.retry import until_back
from core.settings import Settings
from core.status import RunStatus
from core.store import TrackingStore
from jobs.processes import die_with_parent, stop

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Set when the worker is asked to stop (Ctrl-C, SIGTERM, SIGHUP): each training is stopped and its run recorded as
# stopped by a shutdown. Ctrl-C reached the trainings from the terminal; `kill PID` or `docker stop` did not.
SHUTTING_DOWN = threading.Event()
SHUT_DOWN = "training stopped: the worker was shut down"
WATCH_POLL = 0.5  # how soon a shutdown or the training's end is noticed between heartbeats


def supervise(store: TrackingStore, run_id: int, settings: Settings) -> RunStatus:
    """Run one job to a terminal state and return it. A run cancelled while queued is skipped."""
    if store.get_run(run_id).status is not RunStatus.QUEUED:
        return store.get_run(run_id).status
    try:
        store.mark_running(run_id, worker_id())
    except InvalidTransitionError:
        return store.get_run(run_id).status
    try:
        code = _run_process(store, run_id, settings)
    except Exception as error:  # the process could not start, or watching it failed (it was stopped): say so on the run
        code = None
        _fail_if_running(store, run_id, f"the worker could not run training: {failure_text(error)}", _log_tail(settings, run_id))
    if code is not None and code != 0:  # stopped by a shutdown, however it ended (a Ctrl-C and the stop crossing)
        log = _log_tail(settings, run_id)
        _fail_if_running(store, run_id, SHUT_DOWN if SHUTTING_DOWN.is_set() else _exit_message(code, log), log)
    return until_back(lambda: store.get_run(run_id).status)


def _run_process(store: TrackingStore, run_id: int, settings: Settings) -> int:
    path = log_path(settings, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "TUNEDECK_DATA_DIR": str(settings.data_dir.resolve()),
        **({"TUNEDECK_ARTIFACT_ROOT": str(settings.artifact_root.resolve())} if settings.artifact_root else {}),
        "TUNEDECK_RUN_ID": str(run_id),
        "PYTHONUNBUFFERED": "1",
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env.pop("TUNEDECK_MODE", None)  # a worker's run is always recorded: a shell's `disabled` made its script log nothing
    with path.open("a", encoding="utf-8") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "jobs.train_process", str(run_id)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=die_with_parent,
        )
        follower = LogFollower(store, run_id, path)
        try:
            log.write(f"worker {worker_id()} started training process {child.pid}\n")
            log.flush()
            return _watch(store, run_id, child, settings, follower)
        finally:
            if child.poll() is None:  # watching failed: training must not go on with no heartbeat or cancel
                stop(child, grace=30)
            follower.send(final=True)


def _watch(store: TrackingStore, run_id: int, child: subprocess.Popen, settings: Settings, follower: LogFollower) -> int:
    next_beat = time.monotonic() + settings.heartbeat_interval
    while True:
        try:
            return child.wait(timeout=min(WATCH_POLL, settings.heartbeat_interval))
        except subprocess.TimeoutExpired:
            pass
        if SHUTTING_DOWN.is_set():  # it exits with EXIT_STOPPED once it has stored what it logged
            return stop(child, grace=30)
        if time.monotonic() < next_beat:
            continue
        next_beat = time.monotonic() + settings.heartbeat_interval
        follower.send()
        try:
            status = store.heartbeat(run_id)
        except TuneDeckError:
            continue  # a busy store delays one heartbeat; the timeout allows for many
        if status.is_terminal:  # cancelled by the user, or reaped: stop the training
            return stop(child, grace=30)


def _exit_message(code: int, log: str) -> str:
    """Why the training process ended before it recorded the run's outcome, with the last line it wrote (a crash's
    error: "exited with code 1" alone sent the user to the log for the reason)."""
    if code < 0:
        return f"training process was killed by signal {-code}"
    if code == 3:
        return SHUT_DOWN
    said = next((line.strip() for line in reversed(log.splitlines()) if line.strip()), "")
    return f"training process exited with code {code}" + (f": {said}" if said else "")


def _log_tail(settings: Settings, run_id: int) -> str:
    try:
        return read_log(settings, run_id, tail_lines=50)
    except OSError:  # the log itself may be what failed: the run is failed all the same
        return ""


def _fail_if_running(store: TrackingStore, run_id: int, error: str, log: str) -> None:
    """The run failed with its own reason and the end of its log, once the store answers (a training that died while
    the database restarts is not left running, to be failed later as a lost worker's)."""

    def fail() -> None:
        if store.get_run(run_id).status is RunStatus.RUNNING:
            try:
                store.fail_run(run_id, error, traceback=log or None)
            except InvalidTransitionError:
                pass

    until_back(fail)
