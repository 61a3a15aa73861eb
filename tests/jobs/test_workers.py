"""Workers start by themselves when needed: with the app, or from a script's start_run()."""

import fcntl
import importlib.util
import logging
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from core import open_store, remote
from core.errors import StoreError
from core.settings import Settings
from core.status import RunStatus
from jobs.config import make_huey
from jobs.consumer import QuietRepeats
from jobs.embedded import ensure_worker
from jobs.lock import LOCK_NAME, hold_worker_lock, worker_running
from tests.jobs.conftest import ROOT, SAMPLE, start_worker, stop_worker, wait_for


def test_a_run_started_from_python_completes_with_no_other_step(tmp_path):
    env = {**os.environ, "TUNEDECK_DATA_DIR": str(tmp_path), "TUNEDECK_EMBEDDED_WORKER": "1", "TUNEDECK_WORKER_IDLE_EXIT": "2"}

    done = subprocess.run(
        [sys.executable, "-m", "examples.quickstart"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )

    assert done.returncode == 0, done.stderr
    assert "completed: eval_accuracy" in done.stdout and "adapter v1" in done.stdout
    settings = Settings(data_dir=tmp_path)
    wait_for(lambda: not worker_running(settings), timeout=60, what="the idle auto-started worker to exit")


def test_the_quickstart_says_why_its_run_failed_instead_of_a_traceback(tmp_path):
    """Started from a folder without the sample data, the run fails; the script says so, and why, in one line."""
    env = {**os.environ, "TUNEDECK_DATA_DIR": str(tmp_path / "data"), "TUNEDECK_EMBEDDED_WORKER": "1"}
    env.update(TUNEDECK_WORKER_IDLE_EXIT="2", PYTHONPATH=str(ROOT))

    done = subprocess.run(
        [sys.executable, "-m", "examples.quickstart"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )

    assert done.returncode == 1
    assert done.stderr.strip() == f"run 1 failed: dataset file {tmp_path / 'data' / 'sample' / 'sentiment.csv'} does not exist; check the path"
    wait_for(lambda: not worker_running(Settings(data_dir=tmp_path / "data")), timeout=60, what="the idle worker to exit")


def test_only_one_auto_started_worker_runs_per_data_directory(tmp_path):
    env = {"TUNEDECK_DATA_DIR": str(tmp_path)}
    first = start_worker("--auto", **env)
    try:
        wait_for(lambda: worker_running(Settings(data_dir=tmp_path)), timeout=30, what="the first worker to take the lock")
        second = start_worker("--auto", **env)
        assert second.wait(timeout=30) == 0
    finally:
        stop_worker(first)


def test_no_auto_worker_starts_beside_a_worker_started_by_hand(tmp_path):
    """start_run() launched an auto worker beside `tunedeck worker`: two workers took the data folder's jobs."""
    env = {"TUNEDECK_DATA_DIR": str(tmp_path)}
    by_hand = start_worker(**env)
    try:
        wait_for(lambda: worker_running(Settings(data_dir=tmp_path)), timeout=30, what="the hand-started worker to say so")
        assert ensure_worker(Settings(data_dir=tmp_path, embedded_worker=True)) is None
        auto = start_worker("--auto", **env)
        assert auto.wait(timeout=30) == 0  # it finds the other and leaves the jobs to it
    finally:
        stop_worker(by_hand)
    wait_for(lambda: not worker_running(Settings(data_dir=tmp_path)), timeout=30, what="the stopped worker to let go")


def test_a_waiting_training_job_is_work_and_the_reapers_task_is_not():
    from jobs import tasks

    assert tasks.is_training(tasks.train_run.s(5))
    assert not tasks.is_training(tasks.reap_lost_runs.s())


def test_an_idle_auto_started_worker_exits_though_the_reapers_task_keeps_coming(tmp_path):
    """The queue's minutely reaper task counted as work: an idle auto-started worker never reached its idle exit, and
    `tunedeck store copy` waited for it for good. Here it is queued every 0.05 s, so the queue is never empty."""
    env = {**os.environ, "TUNEDECK_DATA_DIR": str(tmp_path)}
    reaping = textwrap.dedent(
        """
        import time
        from jobs import tasks
        while True:
            tasks.reap_lost_runs(), tasks.reap_lost_runs()
            print("queued", flush=True)
            time.sleep(0.05)
        """
    )
    queueing = subprocess.Popen([sys.executable, "-c", reaping], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert queueing.stdout.readline() == "queued\n"
    worker = start_worker("--auto", "--idle-exit", "3", **env)
    try:
        assert worker.wait(timeout=60) == 0
    finally:
        queueing.kill()
        queueing.wait()
        stop_worker(worker)


def test_a_worker_that_cannot_be_started_is_said_in_a_sentence(tmp_path):
    (tmp_path / "logs").write_text("a file where the logs folder goes")

    with pytest.raises(StoreError, match=r"no worker could be started: File exists \(.*logs\); queued runs wait"):
        ensure_worker(Settings(data_dir=tmp_path, embedded_worker=True))


def test_an_embedded_worker_that_refuses_to_start_is_tried_again_only_after_a_while_and_said(tmp_path, monkeypatch):
    """Started again on every page view, a worker that cannot start made 40 processes in 20 s, unseen."""
    from jobs.embedded import EmbeddedWorker

    settings = Settings(data_dir=tmp_path, embedded_worker=True)
    monkeypatch.setenv("TUNEDECK_LOCK_TIMEOUT", "abc")  # what the worker process reads: it refuses (code 2)
    now = [0.0]
    keeper = EmbeddedWorker(parent=os.getpid(), clock=lambda: now[0])

    assert keeper.keep(settings) is None
    first = keeper.child
    assert first.wait(timeout=60) == 2
    now[0] = 10.0
    said = keeper.keep(settings)
    assert keeper.child is first  # not started again yet
    assert said == f"the app's worker refused to start; its reason is in {tmp_path / 'logs' / 'worker.log'}"
    assert "TUNEDECK_LOCK_TIMEOUT" in (tmp_path / "logs" / "worker.log").read_text()

    now[0] = 31.0
    assert keeper.keep(settings) is None  # started again: nothing is known of this one yet
    assert keeper.child is not first
    assert keeper.child.wait(timeout=60) == 2
    now[0] = 32.0
    assert keeper.keep(settings) == said  # it refused too


def test_an_embedded_worker_exits_with_its_parent(tmp_path):
    parent_code = textwrap.dedent(
        """
        import os, time
        from core.settings import get_settings
        from jobs.embedded import ensure_worker
        ensure_worker(get_settings(), parent=os.getpid())
        time.sleep(600)
        """
    )
    env = {**os.environ, "TUNEDECK_DATA_DIR": str(tmp_path), "TUNEDECK_EMBEDDED_WORKER": "1"}
    parent = subprocess.Popen([sys.executable, "-c", parent_code], cwd=ROOT, env=env)
    settings = Settings(data_dir=tmp_path)
    try:
        wait_for(lambda: worker_running(settings), timeout=30, what="the embedded worker to start")
    finally:
        parent.kill()
        parent.wait()

    wait_for(lambda: not worker_running(settings), timeout=30, what="the embedded worker to exit with its parent")


def test_worker_lock_is_exclusive(tmp_path):
    settings = Settings(data_dir=tmp_path)
    held = hold_worker_lock(settings)
    try:
        assert worker_running(settings)
        assert hold_worker_lock(settings, wait=0.1) is None
    finally:
        held.close()
    assert not worker_running(settings)


def test_a_worker_starting_while_someone_looks_still_gets_the_lock(tmp_path):
    settings = Settings(data_dir=tmp_path)
    (tmp_path / LOCK_NAME).touch()
    look = os.open(tmp_path / LOCK_NAME, os.O_RDONLY)
    fcntl.flock(look, fcntl.LOCK_SH)  # worker_running() caught in the middle of its look
    threading.Timer(0.2, os.close, [look]).start()

    held = hold_worker_lock(settings)

    assert held is not None  # a second worker would still be turned away: test_worker_lock_is_exclusive
    held.close()


def test_queue_defaults_to_sqlite_in_the_data_directory(tmp_path):
    queue = make_huey(Settings(data_dir=tmp_path))

    assert queue.storage.filename == str(tmp_path / "queue.sqlite3")


def test_an_unknown_queue_url_fails_at_start_up_with_a_hint():
    with pytest.raises(ValueError, match="must be empty .* or a redis:// URL"):
        Settings(queue_url="mysql://localhost/queue")


def refusal(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jobs.worker", *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("inside", ["", "sub"])
def test_a_worker_whose_data_folder_is_a_file_refuses_in_one_line(tmp_path, inside):
    (tmp_path / "a file").write_text("not a folder")

    ended = refusal(TUNEDECK_DATA_DIR=str(tmp_path / "a file" / inside))

    assert ended.returncode == 2
    assert ended.stderr.splitlines()[-1].startswith(f"tunedeck worker: not starting: TUNEDECK_DATA_DIR: {tmp_path / 'a file'}")
    assert "Traceback" not in ended.stderr


def test_a_worker_whose_queue_file_cannot_be_made_refuses_in_one_line(tmp_path):
    (tmp_path / "queue.sqlite3").mkdir()  # where the queue's file goes

    ended = refusal(TUNEDECK_DATA_DIR=str(tmp_path))

    assert ended.returncode == 2
    assert ended.stderr.splitlines()[-1].startswith(f"tunedeck worker: not starting: cannot keep the job queue in {tmp_path}")
    assert ended.stderr.rstrip().endswith("TUNEDECK_DATA_DIR must name a folder you may write")
    assert "Traceback" not in ended.stderr


def test_importing_the_jobs_makes_no_file_and_a_task_called_directly_makes_the_queue(tmp_path):
    """Importing jobs.config made the data folder and the queue's database, for a page that only read a setting."""
    folder = tmp_path / "data"
    calling = "from jobs import tasks; import pathlib, sys; print(pathlib.Path(sys.argv[1]).exists()); tasks.reap_lost_runs()"

    done = subprocess.run(
        [sys.executable, "-c", calling, str(folder)], cwd=ROOT, env={**os.environ, "TUNEDECK_DATA_DIR": str(folder)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert done.stdout == "False\n"
    assert make_huey(Settings(data_dir=folder)).pending_count() == 1


@pytest.mark.parametrize("root", ["a file", "unmounted"])
def test_a_worker_whose_artifact_root_cannot_keep_adapters_refuses_before_training_anything(tmp_path, root):
    """A shared folder that is a file, or not mounted, would fail every run at its end (or fill this machine's disk)."""
    (tmp_path / "a file").write_text("not a folder")

    ended = refusal(TUNEDECK_DATA_DIR=str(tmp_path / "data"), TUNEDECK_ARTIFACT_ROOT=str(tmp_path / root))

    assert ended.returncode == 2
    said = "is a file, not a folder" if root == "a file" else "does not exist; mount the shared folder there"
    assert ended.stderr.splitlines()[-1].startswith(f"tunedeck worker: not starting: TUNEDECK_ARTIFACT_ROOT: {tmp_path / root} {said}")
    assert not (tmp_path / "unmounted").exists()


def test_a_worker_started_by_hand_on_a_data_folder_it_cannot_use_refuses_in_one_line(tmp_path):
    """With the queue elsewhere, nothing but the worker's own checks looks at the data folder."""
    (tmp_path / "a file").write_text("not a folder")

    ended = refusal(TUNEDECK_DATA_DIR=str(tmp_path / "a file" / "data"), TUNEDECK_QUEUE_URL="postgresql://x@127.0.0.1:1/queue")

    assert ended.returncode == 2
    assert ended.stderr.splitlines()[-1].startswith("tunedeck worker: not starting: TUNEDECK_DATA_DIR:")
    assert "Traceback" not in ended.stderr


def test_a_worker_on_a_redis_queue_without_the_redis_package_refuses_in_one_line(tmp_path):
    """Huey's own ConfigurationError reached the terminal as a traceback."""
    if importlib.util.find_spec("redis") is not None:  # requirements.txt leaves it out: the README names the extra
        pytest.skip("the redis package is installed here, so the worker would try to reach Redis")

    ended = refusal(TUNEDECK_DATA_DIR=str(tmp_path), TUNEDECK_QUEUE_URL="redis://localhost:6379/0")

    assert ended.returncode == 2
    assert ended.stderr.startswith('tunedeck worker: not starting: "redis" python module not found')
    assert "Traceback" not in ended.stderr


def test_a_worker_with_a_bad_setting_refuses_naming_the_variable(tmp_path):
    ended = refusal(TUNEDECK_DATA_DIR=str(tmp_path), TUNEDECK_HEARTBEAT_TIMEOUT="soon")

    assert ended.returncode == 2
    assert ended.stderr.startswith("tunedeck worker: not starting: TUNEDECK_HEARTBEAT_TIMEOUT: Input should be a valid number")


@pytest.mark.parametrize("workers", ["0", "-1", "65", "two"])
def test_a_worker_refuses_a_number_of_jobs_it_could_not_run(tmp_path, workers):
    ended = refusal("--workers", workers, TUNEDECK_DATA_DIR=str(tmp_path))

    assert ended.returncode == 2
    assert f"argument --workers: a whole number from 1 to 64, got '{workers}'" in ended.stderr


def test_a_plain_huey_consumer_runs_training_jobs(job_store, tmp_path):
    from jobs import tasks
    from tests.jobs.conftest import SAMPLE, wait_until_terminal

    experiment_id = job_store.create_experiment({"name": f"huey consumer {tmp_path.name}", "dataset": SAMPLE})
    run_id = tasks.start_run(job_store, experiment_id, {"max_steps": 30, "eval_interval": 10})
    log = (tmp_path / "consumer.log").open("w")
    consumer = subprocess.Popen(
        [sys.executable, "-m", "huey.bin.huey_consumer", "jobs.tasks.huey", "-w", "1"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        (run,) = wait_until_terminal(job_store, [run_id], timeout=120)
    finally:
        stop_worker(consumer)

    assert run.status == "completed" and run.adapter is not None


def test_a_job_for_a_run_the_store_does_not_have_fails_loudly_in_the_workers_log(worker):
    from core.settings import get_settings
    from jobs import tasks

    tasks.train_run(987_654)  # as a worker on another data folder than the app's would get it

    def logged() -> str | None:
        text = "".join(path.read_text() for path in get_settings().data_dir.glob("worker-test-*.log"))
        return "job for run 987654 dropped: the store at" in text and text

    assert "has no such run" in wait_for(logged, timeout=60, what="the worker to log the unknown run")


def test_a_worker_fails_a_queued_run_whose_job_vanished_from_the_queue(tmp_path):
    """The worker's own reaper, with its look at the real queue (jobs.consumer): no job for the run, so it says so."""
    store = open_store(tmp_path)
    run_id = store.create_run(store.create_experiment({"name": "orphan", "dataset": SAMPLE}), {})
    store.set_job_id(run_id, "a-job-nobody-has")
    consumer = start_worker(
        "--workers", "1", TUNEDECK_DATA_DIR=str(tmp_path), TUNEDECK_HEARTBEAT_INTERVAL="0.5", TUNEDECK_HEARTBEAT_TIMEOUT="2"
    )
    try:
        failed = wait_for(lambda: store.get_run(run_id).status.is_terminal and store.get_run(run_id), 60, "the reaper")
    finally:
        stop_worker(consumer)
        remote.stop(store.path)

    assert failed.status is RunStatus.FAILED
    assert "its job a-job-nobody-has is not in the queue the workers read" in failed.error and failed.error.endswith("; start it again")


def test_a_queue_that_cannot_be_read_is_logged_once_a_minute_not_once_a_poll():
    """During a database outage every poll fails: a traceback first, then a line a minute with how many were held."""
    now = [0.0]
    quiet = QuietRepeats(every=60.0, clock=lambda: now[0])

    def failure() -> logging.LogRecord:
        try:
            raise ConnectionError("server closed the connection unexpectedly")
        except ConnectionError:
            return logging.LogRecord("huey.consumer.Worker-1", logging.ERROR, "", 0, "Error reading from queue", (), sys.exc_info())

    shown = []
    for second in range(0, 130):  # a poll a second for 130 s
        now[0] = float(second)
        record = failure()
        if quiet.filter(record):
            shown.append((second, record.getMessage(), record.exc_info is not None))
    other = logging.LogRecord("tunedeck.worker", logging.INFO, "", 0, "run %s started", (3,), None)

    assert shown == [
        (0, "Error reading from queue", True),
        (60, "Error reading from queue (again; 59 more since the last line): server closed the connection unexpectedly", False),
        (120, "Error reading from queue (again; 59 more since the last line): server closed the connection unexpectedly", False),
    ]
    assert quiet.filter(other)

    now[0] = 3600.0  # an hour later, a new outage: its first failure comes with its traceback again
    record = failure()
    assert quiet.filter(record) and record.exc_info is not None and record.getMessage() == "Error reading from queue"
