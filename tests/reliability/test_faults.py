"""Faults: each run ends in a truthful state with a clear error, nothing stored is lost, the app keeps serving."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from core import remote
from core.duckdb_store import DuckDBStore
from core.errors import StoreError, ValidationError
from core.logs import read_log
from core.remote import RemoteStore
from core.settings import get_settings
from core.status import RunStatus
from core.writer import MetricWriter
from jobs import tasks
from jobs.lock import worker_running
from tests import postgres
from tests.jobs.conftest import SAMPLE, start_worker, stop_worker, wait_for, wait_until_terminal
from tests.servers import healthy, start_app, stop, visit

LONG_RUN = {"max_steps": 1_000_000, "eval_interval": 500, "batch_size": 8}


def new_experiment(store, dataset: str = SAMPLE) -> int:
    return store.create_experiment({"name": f"fault {uuid.uuid4().hex[:8]}", "dataset": dataset})


def training_pid(run_id: int) -> int | None:
    match = re.search(r"started training process (\d+)", read_log(get_settings(), run_id))
    return int(match.group(1)) if match else None


def mount_tmpfs(mount: Path, size: str) -> None:
    """Mount a small tmpfs so a disk can really fill up, or skip where that is not allowed (it needs root). A run that
    must be complete (CI, TUNEDECK_REQUIRE_POSTGRES=1) fails instead: the full-disk tests would pass by not running."""
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}): the full-disk tests need root with CAP_SYS_ADMIN"
        if postgres.required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def assert_sound(store) -> None:
    assert store.verify_integrity() == []


@pytest.fixture
def worker():
    process = start_worker("--workers", "2")
    yield process
    stop_worker(process)


def test_killing_the_training_process_fails_the_run_and_keeps_its_points(worker, job_store):
    run_id = tasks.start_run(job_store, new_experiment(job_store), LONG_RUN)
    wait_for(lambda: "loss" in job_store.get_run(run_id).metrics and training_pid(run_id), timeout=60, what="training to log")
    before = job_store.get_run(run_id).metrics["loss"].count

    os.kill(training_pid(run_id), signal.SIGKILL)
    (run,) = wait_until_terminal(job_store, [run_id], timeout=60)

    assert run.status is RunStatus.FAILED
    assert run.error == "training process was killed by signal 9"
    assert job_store.get_run(run_id).metrics["loss"].count >= before
    assert_sound(job_store)


def test_a_nan_loss_fails_the_run_with_a_clear_error_and_keeps_the_finite_points(job_store, tmp_path):
    script = "import json\nfor step, loss in enumerate([0.9, 0.7, float('nan'), 0.5], 1):\n    print(json.dumps(dict(tunedeck='metrics', step=step, values=dict(loss=loss))))\n"
    commands = tmp_path / "commands.toml"
    commands.write_text(f"[commands.diverges]\ncommand = {json.dumps([sys.executable, '-c', script])}\n")
    worker = start_worker("--workers", "1", TUNEDECK_COMMANDS_FILE=str(commands))
    try:
        run_id = tasks.start_run(
            job_store, new_experiment(job_store), {"trainer": "command", "command": "diverges", "max_steps": 4}
        )
        (run,) = wait_until_terminal(job_store, [run_id])
    finally:
        stop_worker(worker)

    assert run.status is RunStatus.FAILED
    assert "metric 'loss' is nan" in run.error and "did the training diverge?" in run.error
    assert job_store.get_run_metrics(run_id).of("loss")["value"].to_list() == [0.9, 0.7, 0.5]  # every finite point kept
    assert_sound(job_store)


def test_a_run_on_a_dataset_already_gone_is_refused_before_it_is_queued(job_store, tmp_path):
    dataset = tmp_path / "reviews.csv"
    shutil.copy(SAMPLE, dataset)
    experiment_id = new_experiment(job_store, dataset=str(dataset))
    dataset.unlink()

    with pytest.raises(ValidationError, match=f"the experiment's dataset file {dataset} is not there; put it there"):
        tasks.start_run(job_store, experiment_id, {"epochs": 1})

    assert job_store.list_runs(experiment_id) == []


def test_a_commands_dataset_is_left_to_its_script_so_a_file_gone_here_does_not_refuse_the_run(job_store, tmp_path):
    """A registered command's script may read a folder, another file, or nothing: only the shipped trainers'
    dataset file is checked before queueing."""
    dataset = tmp_path / "reviews.csv"
    shutil.copy(SAMPLE, dataset)
    experiment_id = new_experiment(job_store, dataset=str(dataset))
    dataset.unlink()

    run_id = tasks.start_run(job_store, experiment_id, {"trainer": "command", "command": "reads-its-own-data"})
    try:
        assert job_store.get_run(run_id).status is RunStatus.QUEUED
    finally:
        tasks.cancel_run(job_store, run_id)  # no later test's worker takes it


@pytest.mark.parametrize("label", ["(logged from a script)", "(imported from MLflow)"])
def test_a_shipped_trainers_run_on_an_experiment_with_no_dataset_file_is_refused_before_it_is_queued(job_store, label):
    experiment_id = new_experiment(job_store, dataset=label)

    with pytest.raises(ValidationError, match=re.escape(f"no dataset file to train on (its dataset is {label}): the builtin trainer reads one")):
        tasks.start_run(job_store, experiment_id, {"epochs": 1})
    with pytest.raises(ValidationError, match="the builtin and peft trainers read one"):
        tasks.start_sweep(job_store, experiment_id, [{"epochs": 1}, {"trainer": "peft", "epochs": 1}])

    assert job_store.list_runs(experiment_id) == []


def test_a_dataset_deleted_between_queueing_and_running_fails_the_run_naming_it(job_store, tmp_path):
    dataset = tmp_path / "reviews.csv"
    shutil.copy(SAMPLE, dataset)
    experiment_id = new_experiment(job_store, dataset=str(dataset))
    run_id = tasks.start_run(job_store, experiment_id, {"epochs": 1})

    dataset.unlink()
    worker = start_worker("--workers", "1")
    try:
        (run,) = wait_until_terminal(job_store, [run_id])
    finally:
        stop_worker(worker)

    assert run.status is RunStatus.FAILED
    assert run.error == f"dataset file {dataset} does not exist; check the path"
    assert job_store.get_experiment(experiment_id).last_error == run.error
    assert_sound(job_store)


def test_killing_the_app_server_mid_run_stops_its_workers_training_and_records_why(job_store, tmp_path):
    """The embedded worker notices its app is gone and stops as on any stop signal: the training is stopped and its
    run failed as stopped by the shutdown (it was left to the next worker to call it lost)."""
    env = {"TUNEDECK_EMBEDDED_WORKER": "1"}
    wait_for(lambda: not worker_running(get_settings()), timeout=60, what="no other auto-started worker")
    server, url = start_app(tmp_path / "app.log", **env)
    visit(url)
    run_id = tasks.start_run(job_store, new_experiment(job_store), LONG_RUN)
    try:
        wait_for(lambda: "loss" in job_store.get_run(run_id).metrics, what="the embedded worker to train")
        pid = wait_for(lambda: training_pid(run_id), what="the training process's pid in the run's log")
        assert Path(f"/proc/{pid}").exists()  # training now: its absence at the end says it was stopped
    finally:
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
    wait_for(lambda: not worker_running(get_settings()), timeout=30, what="the embedded worker to die with the app")

    restarted, url = start_app(tmp_path / "app.log", **env)
    visit(url)
    try:
        (run,) = wait_until_terminal(job_store, [run_id], timeout=60)
        assert healthy(url)
    finally:
        stop(restarted)

    assert run.status is RunStatus.FAILED
    assert run.error == "training stopped: the worker was shut down"
    assert not Path(f"/proc/{pid}").exists()
    assert run.metrics["loss"].count > 0
    assert_sound(job_store)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 3 MB tmpfs mounted for the test, so the disk can really fill up or turn read-only."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mount_tmpfs(mount, "3m")
    yield mount
    remote.stop((mount / "tunedeck.duckdb").resolve())
    subprocess.run(["umount", "-l", str(mount)], check=False)


def remount(mount: Path, mode: str) -> None:
    """Remount, retrying briefly: the kernel may still be releasing a just-exited process's files."""
    for _ in range(50):
        if subprocess.run(["mount", "-o", f"remount,{mode}", str(mount)], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"could not remount {mount} {mode}")


def test_a_full_disk_is_a_clear_error_and_loses_nothing_already_stored(tiny_disk):
    store = RemoteStore(tiny_disk / "tunedeck.duckdb")
    run_id = store.create_run(store.create_experiment({"name": "full", "dataset": "d.csv"}), {})
    with MetricWriter(store) as writer:
        writer.log_series(run_id, "loss", np.arange(1, 1001), np.linspace(1, 0, 1000))

    with pytest.raises(StoreError, match="No space left on device"):
        with MetricWriter(store) as writer:
            noise = np.random.default_rng(0).random(2_999_000)  # 24 MB that no compression squeezes into 3 MB
            writer.log_series(run_id, "loss", np.arange(1001, 3_000_001), noise)

    assert store.get_run(run_id).metrics["loss"].count == 1000
    assert store.get_run_metrics(run_id).series.height == 1000
    assert_sound(store)


def test_a_store_that_a_full_disk_broke_opens_again_by_itself_once_there_is_room(tmp_path):
    """DuckDB invalidates a database whose checkpoint it could not write: every request failed until someone killed
    the store server. Now the server exits on it, and the next request's server opens the file again."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mount_tmpfs(mount, "20m")
    store = RemoteStore(mount / "tunedeck.duckdb", timeout=30, idle_exit=60)
    try:
        run_id = store.create_run(store.create_experiment({"name": "full", "dataset": "d.csv"}), {})
        noise, stored = np.random.default_rng(0), 0
        with pytest.raises(StoreError, match="stopped after a fatal error and is opened again on the next request"):
            for _ in range(100):  # 50,000 points a batch: a checkpoint comes, and the disk cannot hold it
                with MetricWriter(store) as writer:
                    writer.log_series(run_id, "loss", np.arange(stored + 1, stored + 50_001), noise.random(50_000))
                stored += 50_000
        remount(mount, "size=300m")

        def answered() -> int | None:
            try:
                return store.get_run(run_id).metrics["loss"].count
            except StoreError:  # the broken server's last answers, until it has gone
                return None

        assert wait_for(answered, timeout=60, what="a new server to open the store") >= stored
        with MetricWriter(store) as writer:
            writer.log_series(run_id, "loss", [10**9], [0.5])
        assert store.get_run(run_id).metrics["loss"].last_step == 10**9
        assert_sound(store)
    finally:
        remote.stop((mount / "tunedeck.duckdb").resolve())
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_read_only_store_from_before_curve_overviews_still_draws_curves(tiny_disk):
    older = DuckDBStore(tiny_disk / "tunedeck.duckdb", upkeep=False)
    run_id = older.create_run(older.create_experiment({"name": "old", "dataset": "d.csv"}), {})
    older.mark_running(run_id, worker="w:1")
    with MetricWriter(older) as writer:
        writer.log_series(run_id, "loss", np.arange(1, 3001), np.linspace(2, 0, 3000))
    older.complete_run(run_id)
    expected = older.get_metric_series([run_id], max_points=100)
    older._write(lambda con: con.execute(  # as a version before migration 7 left it
        "DROP TABLE metric_overviews; DROP TABLE overview_points; DROP TABLE growing_overviews; DROP TABLE growing_points; "
        "DELETE FROM schema_migrations WHERE version >= 7"
    ))
    older.close()
    remount(tiny_disk, "ro")
    try:
        store = RemoteStore(tiny_disk / "tunedeck.duckdb")
        assert store.get_metric_series([run_id], max_points=100).equals(expected)
        assert remote.stop(store.path)
    finally:
        remount(tiny_disk, "rw")


def test_a_read_only_data_directory_still_serves_reads_and_refuses_writes_clearly(tiny_disk):
    store = RemoteStore(tiny_disk / "tunedeck.duckdb")
    experiment_id = store.create_experiment({"name": "frozen", "dataset": "d.csv"})
    # The server holds the file open for writing, and Linux refuses a read-only remount while it does: the
    # folder turns read-only once the server has gone, and the next one opens the store read-only.
    assert remote.stop(store.path)
    remount(tiny_disk, "ro")
    try:
        assert store.get_experiment(experiment_id).name == "frozen"
        with pytest.raises(StoreError, match="[Rr]ead-only file system"):
            store.create_experiment({"name": "blocked", "dataset": "d.csv"})
        assert remote.stop(store.path)  # a server on the read-only folder leaves before it turns writable again
    finally:
        remount(tiny_disk, "rw")
    assert store.list_experiments().total == 1
    assert_sound(store)
