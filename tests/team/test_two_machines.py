"""Team mode end to end with real processes: "machine A" (the app's side) and "machine B" (workers) share nothing
but the PostgreSQL URL and the artifact root; each has its own data folder and working folder."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from huey import PostgresHuey

from core.artifacts import FolderArtifacts
from core.postgres_store import PostgresStore
from core.settings import Settings
from core.status import RunStatus
from jobs.config import make_huey
from tests.jobs.conftest import ROOT, SAMPLE, wait_for
from tests.servers import free_port

HEARTBEAT_TIMEOUT = 8.0
SHORT_RUN = {"epochs": 1, "eval_interval": 20, "batch_size": 16}
LONG_RUN = {"max_steps": 1_000_000, "eval_interval": 500, "batch_size": 8}

# What "machine A's app" does when the user presses Start: the app's own code path, in its own process.
START_RUNS = """
import json, sys
from core import open_store
from jobs.tasks import start_run
store = open_store()
experiment = store.find_experiment("team") or store.get_experiment(store.create_experiment({"name": "team", "dataset": sys.argv[1]}))
configs = json.loads(sys.argv[2])
print(json.dumps([start_run(store, experiment.id, config) for config in configs]))
"""


def libfaketime() -> Path | None:
    """Debian's libfaketime (package faketime), wherever its architecture's folder is."""
    return next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))), None)


class Machine:
    """A data folder and a working folder of its own, and the shared URL and artifact root."""

    def __init__(
        self, name: str, tmp_path: Path, url: str, shared: Path, hostname: str | None = None, clock_off_by: str | None = None
    ):
        """`clock_off_by`: this machine's clock is off by that much ("-5m": five minutes behind), through Debian's
        libfaketime preloaded into its processes and their children (the `faketime` command would fork, and a
        signal to it would leave its child running)."""
        self.data, self.work = tmp_path / name / "data", tmp_path / name / "work"
        self.work.mkdir(parents=True)
        shared.mkdir(exist_ok=True)  # the share every machine mounts: there before any worker starts
        path = [str(ROOT)]
        if hostname:  # another host: its processes (the worker's training processes too) name themselves so
            (tmp_path / name / "host").mkdir()
            (tmp_path / name / "host" / "sitecustomize.py").write_text(f"import socket\nsocket.gethostname = lambda: {hostname!r}\n")
            path.insert(0, str(tmp_path / name / "host"))
        self.env = {
            **os.environ,
            "TUNEDECK_DATA_DIR": str(self.data),
            "TUNEDECK_STORE_URL": url,
            "TUNEDECK_ARTIFACT_ROOT": str(shared),
            "TUNEDECK_EMBEDDED_WORKER": "0",
            "TUNEDECK_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "PYTHONPATH": os.pathsep.join(path),
        }
        self.env.pop("TUNEDECK_QUEUE_URL", None)
        if clock_off_by:  # a constant offset: rates stay true
            self.env.update({"LD_PRELOAD": str(libfaketime()), "FAKETIME": clock_off_by})

    def run(self, code: str, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code, *args], cwd=self.work, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start_runs(self, *configs: dict) -> list[int]:
        return json.loads(self.run(START_RUNS, SAMPLE, json.dumps(configs)).splitlines()[-1])

    def worker(self, *args: str) -> subprocess.Popen:
        log = (self.work / f"worker-{time.monotonic_ns()}.log").open("w")
        return subprocess.Popen(
            [sys.executable, "-m", "jobs.worker", *args], cwd=self.work, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )


@pytest.fixture
def team(postgres_databases, tmp_path):
    url, shared = postgres_databases.fresh(), tmp_path / "shared"
    a, b = Machine("a", tmp_path, url, shared), Machine("b", tmp_path, url, shared)
    seen_from_a = PostgresStore(url, a.data)
    yield a, b, seen_from_a, shared
    seen_from_a.close()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_machine_b_trains_what_machine_a_starts_and_a_sees_metrics_logs_and_adapters(team):
    a, b, store, shared = team
    run_ids = a.start_runs(*[SHORT_RUN] * 4)
    worker = b.worker("--workers", "4")
    try:
        runs = wait_for(
            lambda: all(store.get_run(r).status.is_terminal for r in run_ids) and store.get_runs(run_ids),
            240,
            "B to train A's runs",
        )
    finally:
        _stop(worker)

    assert [run.status for run in runs] == [RunStatus.COMPLETED] * 4, [run.error for run in runs]
    assert all(run.worker.endswith(f":{worker.pid}") for run in runs)
    series = store.get_metric_series(run_ids, ["loss"], max_points=None)
    assert sorted(series["run_id"].unique().to_list()) == sorted(run_ids)
    for run in runs:
        assert "completed after" in store.read_log(run.id)  # the training process's output, from B's folder
        adapter = store.get_adapter(run.adapter.id)
        assert Path(adapter.path).parent == shared
        assert FolderArtifacts(shared).size_and_checksum(adapter.path) == (adapter.size_bytes, adapter.checksum)
    assert not (a.data / "logs").exists() and not (a.data / "adapters").exists()  # nothing of B's reached A's folder
    assert not list((b.data / "adapters").glob("run-*"))  # on the shared root only: B's disk keeps no second copy
    assert store.verify_integrity() == []


def train_then_kill(a: Machine, trainer: Machine, store: PostgresStore) -> tuple[int, float]:
    """A long run started from A and trained by a worker on `trainer`, whose worker is SIGKILLed once A sees the run's
    live metrics and log; the run's ID and when the worker died."""
    worker = trainer.worker("--workers", "1")
    try:
        (run_id,) = a.start_runs(LONG_RUN)
        wait_for(lambda: "loss" in store.get_run(run_id).metrics, 120, "A to see the run's live metrics")
        wait_for(lambda: "started training process" in store.read_log(run_id), 30, "A to see the run's live log")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    return run_id, time.monotonic()


def failed_as_lost(store: PostgresStore, run_id: int):
    return wait_for(
        lambda: store.get_run(run_id).status is RunStatus.FAILED and store.get_run(run_id),
        HEARTBEAT_TIMEOUT + 30,
        "the lost run to be failed",
    )


def test_killing_machine_b_fails_its_runs_within_the_heartbeat_timeout_and_the_next_worker_takes_new_work(team):
    a, b, store, _ = team
    long_run, killed_at = train_then_kill(a, b, store)
    second = b.worker("--workers", "2")
    try:
        lost = failed_as_lost(store, long_run)
        assert time.monotonic() - killed_at <= HEARTBEAT_TIMEOUT + 30
        assert lost.error.startswith("worker lost")
        (next_run,) = a.start_runs(SHORT_RUN)
        done = wait_for(lambda: store.get_run(next_run).status.is_terminal and store.get_run(next_run), 180, "new work")
        assert done.status is RunStatus.COMPLETED
        assert done.worker.endswith(f":{second.pid}")
    finally:
        _stop(second)


def test_a_run_on_a_machine_that_vanished_is_failed_by_another_machines_worker_once_its_heartbeats_stop(team, tmp_path):
    """Another host cannot look for the lost process: its reaper goes by the heartbeat timeout alone."""
    a, _, store, shared = team
    vanishing = Machine("vanishing", tmp_path, store.url, shared, hostname="gpu-vanishing")
    other = Machine("other", tmp_path, store.url, shared, hostname="gpu-other")
    long_run, killed_at = train_then_kill(a, vanishing, store)
    survivor = other.worker("--workers", "1")
    try:
        lost = failed_as_lost(store, long_run)
        waited = time.monotonic() - killed_at
    finally:
        _stop(survivor)

    assert lost.error.startswith("worker lost: gpu-vanishing:") and "sent no heartbeat since" in lost.error
    assert HEARTBEAT_TIMEOUT - 3 <= waited <= HEARTBEAT_TIMEOUT + 30


def test_a_worker_whose_store_cannot_be_reached_refuses_to_start_and_hides_the_password(tmp_path, postgres_databases):
    port = postgres_databases.cluster.port
    cases = {
        f"postgresql://alice:s3cret@127.0.0.1:{free_port()}/tunedeck": "cannot use the PostgreSQL store at postgresql://alice:***@127.0.0.1",
        f"postgresql://postgres:s3cret@127.0.0.1:{port}/no_such_db": 'database "no_such_db" does not exist',
        "mysql://alice:s3cret@db/tunedeck": "TUNEDECK_STORE_URL must be empty",
    }
    for url, message in cases.items():
        machine = Machine(f"m{len(list(tmp_path.iterdir()))}", tmp_path, url, tmp_path / "shared")
        worker = machine.worker()
        assert worker.wait(timeout=60) == 2
        log = next(machine.work.glob("worker-*.log")).read_text()
        assert "not starting" in log and message in log, log
        assert "s3cret" not in log


def test_team_mode_queues_on_the_stores_database_unless_told_otherwise(tmp_path):
    url = "postgresql://tunedeck@db.example:5432/tunedeck?sslmode=require"
    team = make_huey(Settings(data_dir=tmp_path, store_url=url))
    assert isinstance(team, PostgresHuey) and team.storage.dsn == url
    assert (
        Settings(data_dir=tmp_path, store_url=url, queue_url="redis://redis:6379/0").effective_queue_url == "redis://redis:6379/0"
    )
    assert Settings(data_dir=tmp_path).effective_queue_url == ""  # the embedded SQLite queue


# A script on a laptop with no worker: its points are journaled, and it is killed before its writer stores them.
KILLED_BEFORE_STORING = """
import time
from core import open_store
from core.writer import MetricWriter
import sys
store = open_store()
experiment = store.create_experiment({"name": "laptop", "dataset": sys.argv[1]})
run_id = store.create_run(experiment, {})
store.mark_running(run_id, "laptop:1")
writer = MetricWriter(store, flush_seconds=3600)
for step in range(1, 51):
    writer.log(run_id, step, {"loss": 1.0 / step, "accuracy": step / 50})
print(run_id, flush=True)
time.sleep(120)
"""
NEXT_SCRIPT = """
import time
from core import tracking
with tracking.start_run("next on the laptop") as run:
    run.log({"loss": 1.0}, step=1)
    time.sleep(120)
"""


def test_a_script_killed_on_a_machine_with_no_worker_loses_nothing_once_the_next_script_runs_there(team, tmp_path):
    """No owner of ours runs in team mode: the next writer on that machine replays what the killed one journaled."""
    _, _, seen, _ = team
    laptop = Machine("laptop", tmp_path, seen.url, tmp_path / "shared")
    killed = subprocess.Popen(
        [sys.executable, "-c", KILLED_BEFORE_STORING, SAMPLE], cwd=laptop.work, env=laptop.env, stdout=subprocess.PIPE, text=True
    )
    run_id = int(killed.stdout.readline())
    killed.kill()
    killed.wait()
    left = list((laptop.data / "journal").glob("*.points"))
    assert left and seen.get_run_metrics(run_id).series.height == 0

    following = subprocess.Popen([sys.executable, "-c", NEXT_SCRIPT], cwd=laptop.work, env=laptop.env)
    try:
        wait_for(lambda: seen.get_run_metrics(run_id).series.height == 100, timeout=60, what="the killed script's points")
        wait_for(lambda: not any(path.exists() for path in left), timeout=30, what="the killed script's segment gone")
    finally:
        following.kill()
        following.wait()
    assert seen.get_run(run_id).metrics["loss"].count == 50
