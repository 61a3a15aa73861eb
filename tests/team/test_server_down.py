"""The database server stopping under a running app, then coming back: while it is down each call ends in a store
error that says what to check, within the store's timeout; once it is back the same store object carries on."""

import os
import subprocess
import sys
import threading
import time

import pytest

from core import tracking
from core import writer as writer_module
from core.errors import StoreBusyError, TuneDeckError
from core.postgres_store import PostgresStore
from core.retry import until_back
from core.settings import get_settings
from core.status import RunStatus
from core.writer import MetricWriter
from jobs import supervisor
from jobs.reaper import Outages, reap
from tests.conftest import TickingClock
from tests.jobs.conftest import ROOT, SAMPLE
from tests.postgres import Cluster, skip_or_fail_without_binaries
from tests.waiting import wait_for


@pytest.fixture
def cluster():
    cluster = Cluster(skip_or_fail_without_binaries()).start()
    yield cluster
    cluster.stop()


def test_while_the_database_server_is_down_calls_say_so_and_once_it_is_back_they_work_again(cluster, tmp_path):
    store = PostgresStore(cluster.url, tmp_path, timeout=1)
    experiment_id = store.create_experiment({"name": "before the outage", "dataset": "d.csv"})

    cluster.stop_server()
    failures = []
    for _ in range(3):  # the connections the pool held break first; then no new one can be made within the timeout
        with pytest.raises(TuneDeckError) as raised:
            store.get_experiment(experiment_id)
        failures.append(raised.value)

    assert all("psycopg" not in str(error) for error in failures)
    broken = [error for error in failures if not isinstance(error, StoreBusyError)]
    assert broken and broken[0] is failures[0]
    assert all("lost the connection to the PostgreSQL store" in str(error) for error in broken)
    assert all("may have stopped or restarted" in str(error) for error in broken)
    assert isinstance(failures[-1], StoreBusyError)
    assert str(failures[-1]) == (
        f"no connection to the PostgreSQL store at {store.location} within 1 s: the database server may be down or "
        "unreachable, or every connection busy; `tunedeck doctor` says which"
    )

    cluster.start_server()

    def answers() -> bool:
        try:
            return store.get_experiment(experiment_id).name == "before the outage"
        except TuneDeckError:
            return False

    wait_for(answers, timeout=30, what="the store to answer once its server is back")
    assert store.create_experiment({"name": "after the outage", "dataset": "d.csv"}) > experiment_id
    store.close()


def loss_points(store: PostgresStore, run_id: int) -> int:
    try:
        summary = store.get_run(run_id).metrics.get("loss")
    except TuneDeckError:
        return -1  # the pool is still making its connections again
    return summary.count if summary else 0


def test_a_writer_holds_its_points_while_the_server_is_down_and_stores_them_once_it_is_back(cluster, tmp_path):
    """Training logs on through an outage: a full buffer that cannot be stored waits, and log() neither raises nor
    waits for the store's timeout (the default minute, for which the pool waits for a connection) to try again."""
    store = PostgresStore(cluster.url, tmp_path)
    run_id = store.create_run(store.create_experiment({"name": "logs through", "dataset": "d.csv"}), {})
    writer = MetricWriter(store, flush_points=100, flush_seconds=0.2)

    cluster.stop_server()
    logged, slowest, started = 0, 0.0, time.monotonic()
    while time.monotonic() - started < 5:  # many full buffers, while the timer tries again and again
        began = time.monotonic()
        writer.log(run_id, logged, {"loss": 1.0 / (logged + 1)})
        slowest = max(slowest, time.monotonic() - began)
        logged += 1
        time.sleep(0.002)
    cluster.start_server()

    assert slowest < store.timeout / 4, f"a log() waited {slowest:.1f} s for the store"
    wait_for(lambda: loss_points(store, run_id) == logged, timeout=90, what="the held points to be stored")
    writer.close()
    assert store.get_metric_series([run_id], ["loss"], max_points=None)["step"].to_list() == list(range(logged))
    store.close()


def test_a_scripts_run_that_ends_while_the_database_restarts_is_completed_once_it_is_back(cluster, tmp_path):
    """Its training is done: leaving the block waits for the store (README: Team mode) instead of failing the run."""
    store = PostgresStore(cluster.url, tmp_path, timeout=1)
    store.create_experiment({"name": "ends in an outage", "dataset": "d.csv"})
    with tracking.start_run("ends in an outage", store=store) as run:
        for step in range(50):
            run.log(step, {"loss": 1.0 / (step + 1)})
        cluster.stop_server()
        back = threading.Timer(3.0, cluster.start_server)
        back.start()
    back.join()

    assert store.get_run(run.id).status is RunStatus.COMPLETED
    assert loss_points(store, run.id) == 50
    store.close()


def test_a_training_that_dies_while_the_database_restarts_fails_its_run_with_its_own_reason_once_it_is_back(
    cluster, tmp_path
):
    """The worker records why the training process ended when the store answers again, instead of leaving the run
    running until a reaper fails it as a lost worker's."""
    store = PostgresStore(cluster.url, tmp_path, timeout=1)
    run_id = store.create_run(store.create_experiment({"name": "dies in an outage", "dataset": "d.csv"}), {})
    store.mark_running(run_id, worker="machine-b:1")
    cluster.stop_server()
    back = threading.Timer(3.0, cluster.start_server)
    back.start()

    supervisor._fail_if_running(store, run_id, "training process was killed by signal 9", "")
    back.join()

    run = store.get_run(run_id)
    assert (run.status, run.error) == (RunStatus.FAILED, "training process was killed by signal 9")
    store.close()


def test_a_training_process_that_starts_while_the_database_is_down_trains_once_it_is_back(cluster, tmp_path):
    """It opened the store once, at its start: a run taken just before a restart failed as "exited with code 1"."""
    store = PostgresStore(cluster.url, tmp_path, timeout=1)
    run_id = store.create_run(store.create_experiment({"name": "starts in an outage", "dataset": SAMPLE}), {"epochs": 1})
    store.mark_running(run_id, worker="machine-b:1")
    (tmp_path / "shared").mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TUNEDECK_")}
    env |= {"TUNEDECK_STORE_URL": cluster.url, "TUNEDECK_DATA_DIR": str(tmp_path / "b"), "TUNEDECK_ARTIFACT_ROOT": str(tmp_path / "shared")}
    cluster.stop_server()
    training = subprocess.Popen(
        [sys.executable, "-m", "jobs.train_process", str(run_id)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    time.sleep(4.0)  # it starts, and finds no server
    assert training.poll() is None, training.stdout.read()
    cluster.start_server()

    said, _ = training.communicate(timeout=120)

    assert training.returncode == 0, said
    run = until_back(lambda: store.get_run(run_id))  # this process's connections broke with the restart
    assert run.status is RunStatus.COMPLETED and run.metrics["loss"].count > 0
    store.close()


def test_past_what_a_writer_holds_in_an_outage_log_raises_and_keeps_the_point(cluster, tmp_path, monkeypatch):
    monkeypatch.setattr(writer_module, "OUTAGE_POINTS", 300)
    store = PostgresStore(cluster.url, tmp_path, timeout=1)
    run_id = store.create_run(store.create_experiment({"name": "too long an outage", "dataset": "d.csv"}), {})
    writer = MetricWriter(store, flush_points=100, flush_seconds=0)

    cluster.stop_server()
    logged = 0
    with pytest.raises(TuneDeckError, match="PostgreSQL store"):
        while logged <= 400:
            logged += 1
            writer.log(run_id, logged - 1, {"loss": 0.5})
    cluster.start_server()

    assert logged == 301  # past 300 held points, the first log() whose buffer could not be stored raised
    wait_for(lambda: loss_points(store, run_id) >= 0, timeout=30, what="the store to answer again")
    writer.close()
    assert loss_points(store, run_id) == logged  # the point whose log() raised was kept too
    store.close()


def test_runs_silent_only_while_the_database_was_down_are_not_failed_as_lost_when_it_is_back(cluster, tmp_path):
    """No heartbeat gets through an outage, so a reaper that could not reach the store counts silence again only
    from when it could; a run whose worker died meanwhile is failed a heartbeat timeout later."""
    clock = TickingClock()
    store = PostgresStore(cluster.url, tmp_path, timeout=1, clock=clock)
    experiment_id = store.create_experiment({"name": "through an outage", "dataset": "d.csv"})
    healthy, dead = store.create_run(experiment_id, {}), store.create_run(experiment_id, {})
    store.mark_running(healthy, "gpu-b:1")
    store.mark_running(dead, "gpu-b:2")
    settings = get_settings().model_copy(update={"heartbeat_timeout": 60.0, "heartbeat_interval": 2.0})
    outages = Outages(lambda: clock().timestamp())
    assert reap(store, settings, outages=outages) == []

    cluster.stop_server()
    with pytest.raises(TuneDeckError):
        reap(store, settings, outages=outages)
    clock.advance(120)  # two minutes down: no worker's heartbeat got through
    cluster.start_server()

    answers = []

    def reaped() -> bool:
        try:
            answers.append(reap(store, settings, outages=outages))
            return True
        except TuneDeckError:
            return False  # the pool is still making its connections again

    wait_for(reaped, timeout=30, what="the reaper to reach the store")
    assert answers == [[]]
    assert [store.get_run(run_id).status for run_id in (healthy, dead)] == [RunStatus.RUNNING] * 2

    clock.advance(40)
    store.heartbeat(healthy)  # its worker is back too; the other one died during the outage
    clock.advance(30)
    assert reap(store, settings, outages=outages) == [dead]
    assert store.get_run(healthy).status is RunStatus.RUNNING
    store.close()


def test_a_reaper_whose_call_waited_out_an_outage_counts_silence_only_from_then(cluster, tmp_path):
    """A worker's store waits for a connection (TUNEDECK_LOCK_TIMEOUT) and gets one once the server is back: its
    reaper's call then answers late instead of failing, which counts as an outage too."""
    clock = TickingClock()
    worker_side = PostgresStore(cluster.url, tmp_path / "worker", clock=clock)
    run_id = worker_side.create_run(worker_side.create_experiment({"name": "waited out", "dataset": "d.csv"}), {})
    worker_side.mark_running(run_id, "gpu-b:1")
    worker_side.close()
    reaper_side = PostgresStore(cluster.url, tmp_path / "reaper", timeout=60, clock=clock)  # its pool opens on first use
    settings = get_settings().model_copy(update={"heartbeat_timeout": 8.0, "heartbeat_interval": 2.0})
    outages = Outages(lambda: clock().timestamp())
    clock.advance(120)  # the run's last heartbeat is long past the timeout: the outage is what kept it silent

    cluster.stop_server()
    back = threading.Timer(3.0, cluster.start_server)  # after 3 s, over a quarter of the 8 s timeout
    back.start()
    try:
        assert reap(reaper_side, settings, outages=outages) == []
    finally:
        back.join()

    assert reaper_side.get_run(run_id).status is RunStatus.RUNNING
    reaper_side.close()


def test_workers_runs_go_on_through_a_database_restart_longer_than_the_heartbeat_timeout(cluster, tmp_path):
    """Real processes: two machines' workers train while the database server is stopped for longer than the
    heartbeat timeout and started again. Each worker's reaper reaches the store again when the heartbeats do, on its
    own machine and the other's: neither run is failed as lost, and both go on logging."""
    from tests.team.test_two_machines import HEARTBEAT_TIMEOUT, LONG_RUN, Machine, _stop

    seen = PostgresStore(cluster.url, tmp_path / "seen", timeout=5)  # migrates the database
    a, b, c = (Machine(name, tmp_path, cluster.url, tmp_path / "shared", hostname=name) for name in ("a", "b", "c"))
    run_ids = a.start_runs(LONG_RUN, LONG_RUN)
    workers = [b.worker("--workers", "1"), c.worker("--workers", "1")]
    try:
        wait_for(lambda: all("loss" in run.metrics for run in seen.get_runs(run_ids)), timeout=120, what="both runs to log")
        seen.close()
        cluster.stop_server()
        time.sleep(HEARTBEAT_TIMEOUT + 4)
        cluster.start_server()
        seen = PostgresStore(cluster.url, tmp_path / "seen", timeout=30)
        logged = [run.metrics["loss"].count for run in seen.get_runs(run_ids)]
        time.sleep(HEARTBEAT_TIMEOUT + 4)  # long enough for a reaper to fail them, were their silence counted

        runs = seen.get_runs(run_ids)
        assert [run.status for run in runs] == [RunStatus.RUNNING] * 2, [run.error for run in runs]
        assert all(run.metrics["loss"].count > before for run, before in zip(runs, logged, strict=True))
        for run_id in run_ids:
            seen.cancel_run(run_id)
        wait_for(lambda: all(run.status is RunStatus.CANCELLED for run in seen.get_runs(run_ids)), 60, "the cancels to land")
    finally:
        for worker in workers:
            _stop(worker)
        seen.close()
