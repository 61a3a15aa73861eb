"""End to end with a real worker process: queue, train, store metrics, register adapters."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from core.logs import log_path, read_log
from core.runs import start_run
from core.settings import get_settings
from core.status import RunStatus
from core.writer import MetricWriter
from jobs import supervisor, tasks, train_process
from jobs.supervisor import supervise
from tests.jobs.conftest import ROOT, SAMPLE, start_worker, stop_worker, wait_for, wait_until_terminal

LONG_RUN = {"max_steps": 1_000_000, "eval_interval": 500, "batch_size": 8}


def new_experiment(store, dataset: str = SAMPLE) -> int:
    return store.create_experiment({"name": f"jobs {uuid.uuid4().hex[:8]}", "dataset": dataset})


def test_three_runs_with_different_learning_rates_train_log_system_metrics_and_register_adapters(worker, job_store):
    experiment_id = new_experiment(job_store)
    run_ids = [
        tasks.start_run(job_store, experiment_id, {"epochs": 2, "learning_rate": lr, "eval_interval": 20})
        for lr in (0.001, 0.01, 0.05)
    ]

    runs = wait_until_terminal(job_store, run_ids)

    assert [run.status for run in runs] == [RunStatus.COMPLETED] * 3
    for run in runs:
        metrics = job_store.get_run_metrics(run.id)
        assert {"loss", "learning_rate", "grad_norm", "samples_per_second", "eval_loss", "eval_accuracy"} <= set(metrics.summary)
        assert metrics.summary["loss"].count == metrics.of("loss").height == metrics.summary["loss"].last_step
        assert run.attempt == 1 and run.worker and run.started_at and run.ended_at
        assert {"system/cpu_percent", "system/rss_mb"} <= set(metrics.summary)  # every trainer, even a 1-second run
        assert run.config["trainable_params"] > 0 and run.config["total_steps"] == metrics.summary["loss"].last_step
    adapters = [job_store.get_adapter(run.adapter.id) for run in runs]
    assert len({adapter.path for adapter in adapters}) == 3
    assert sorted(adapter.version for adapter in adapters) == [1, 2, 3]
    assert all(os.path.exists(os.path.join(a.path, "adapter_model.safetensors")) for a in adapters)
    experiment = job_store.get_experiment(experiment_id)
    assert experiment.status == "completed"
    best_run = min(runs, key=lambda run: run.metrics["eval_loss"].last)
    assert experiment.best_primary.key == "eval_loss"
    assert experiment.best_primary.run_id == best_run.id
    assert experiment.best_primary.value == best_run.metrics["eval_loss"].last
    assert "completed after" in read_log(get_settings(), run_ids[0])


def test_a_run_on_a_bad_dataset_fails_with_the_error_on_run_and_experiment(worker, job_store, tmp_path):
    bad = tmp_path / "no_labels.csv"
    bad.write_text("text,score\nhello,1\n")
    experiment_id = new_experiment(job_store, dataset=str(bad))

    run_id = tasks.start_run(job_store, experiment_id, {"epochs": 1})
    (run,) = wait_until_terminal(job_store, [run_id])

    assert run.status is RunStatus.FAILED
    assert "label" in run.error and "no_labels.csv" in run.error
    assert run.error.startswith(f"{bad} is missing the column 'label'")  # a sentence, without the error's class name
    assert run.traceback is None  # the sentence says it all, in the log too
    log = read_log(get_settings(), run_id)
    assert f"training failed: {run.error}" in log and "Traceback" not in log
    experiment = job_store.get_experiment(experiment_id)
    assert experiment.status == "failed"
    assert experiment.last_error == run.error
    assert job_store.verify_integrity() == []


def test_cancelling_a_running_run_stops_it(worker, job_store):
    experiment_id = new_experiment(job_store)
    run_id = tasks.start_run(job_store, experiment_id, LONG_RUN)
    wait_for(lambda: "loss" in job_store.get_run(run_id).metrics, what="the run to log metrics")

    tasks.cancel_run(job_store, run_id)

    assert job_store.get_run(run_id).status is RunStatus.CANCELLED
    wait_for(lambda: "stopped at step" in read_log(get_settings(), run_id), timeout=30, what="the training process to stop")
    assert job_store.get_experiment(experiment_id).status == "cancelled"
    assert job_store.get_run(run_id).adapter is None
    assert job_store.verify_integrity() == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_worker_stopped_by_a_signal_stops_its_trainings_and_records_them_as_stopped(job_store, signum):
    """SIGTERM (`kill PID`, docker stop, systemd) ended the worker under its training, leaving the run and its
    experiment running until another worker called it lost; SIGHUP (a closed terminal) restarted the worker as a
    script that could not import the project. Ctrl-C always did this."""
    worker = start_worker("--workers", "2")
    try:
        experiment_id = new_experiment(job_store)
        run_id = tasks.start_run(job_store, experiment_id, LONG_RUN)
        wait_for(lambda: "loss" in job_store.get_run(run_id).metrics, timeout=30, what="the run to log metrics")

        worker.send_signal(signum)
        code = worker.wait(timeout=60)
    finally:
        stop_worker(worker)

    run = job_store.get_run(run_id)
    assert code == 0
    assert (run.status, run.error) == (RunStatus.FAILED, "training stopped: the worker was shut down")
    assert job_store.get_experiment(experiment_id).status == "failed"
    assert "stopped at step" in read_log(get_settings(), run_id)
    assert job_store.verify_integrity() == []


def test_ctrl_c_in_the_workers_terminal_records_its_trainings_as_stopped(job_store):
    """Ctrl-C reaches the worker and its training at once (one process group): the worker's own stop then crossed the
    training's exit, and the run read "training process was killed by signal 15"."""
    log = (get_settings().data_dir / f"worker-ctrl-c-{uuid.uuid4().hex[:8]}.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "jobs.worker", "--workers", "2"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        experiment_id = new_experiment(job_store)
        run_id = tasks.start_run(job_store, experiment_id, LONG_RUN)
        wait_for(lambda: "loss" in job_store.get_run(run_id).metrics, timeout=30, what="the run to log metrics")

        os.killpg(worker.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        worker.wait(timeout=60)
    finally:
        stop_worker(worker)

    run = job_store.get_run(run_id)
    assert (run.status, run.error) == (RunStatus.FAILED, "training stopped: the worker was shut down")
    assert job_store.verify_integrity() == []


def test_a_job_taken_from_the_queue_as_the_worker_stops_is_queued_again(job_store):
    """It started a training the shutdown killed at once, and the run failed instead of waiting for the next worker."""
    run_id = start_run(job_store, new_experiment(job_store), {"epochs": 1}, enqueue=lambda _: None)
    supervisor.SHUTTING_DOWN.set()
    try:
        tasks.train_run.call_local(run_id)
    finally:
        supervisor.SHUTTING_DOWN.clear()

    run = job_store.get_run(run_id)
    assert run.status is RunStatus.QUEUED
    assert run.job_id in tasks.live_job_ids()
    tasks.cancel_run(job_store, run_id)  # no worker of this test takes it


def test_a_run_the_worker_loses_track_of_is_stopped_and_failed_not_left_training(job_store):
    """Watching a training process can fail in ways the store's errors do not cover (here its log file turns into a
    folder): the process was left training with no heartbeat and no cancel, and the run read "could not start"."""
    settings = get_settings()
    run_id = start_run(job_store, new_experiment(job_store), LONG_RUN, enqueue=lambda run_id: "supervised here")
    outcome = []
    watching = threading.Thread(target=lambda: outcome.append(supervise(job_store, run_id, settings)))
    watching.start()
    wait_for(lambda: "loss" in job_store.get_run(run_id).metrics, what="the run to log metrics")
    path = log_path(settings, run_id)
    pid = int(re.search(r"started training process (\d+)", path.read_text()).group(1))

    path.unlink()
    path.mkdir()
    try:
        watching.join(timeout=90)
        run = job_store.get_run(run_id)
    finally:
        path.rmdir()

    assert outcome == [RunStatus.FAILED]
    assert run.error.startswith("the worker could not run training: ") and "Is a directory" in run.error
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped, not training on
    assert job_store.verify_integrity() == []


def test_a_training_process_that_dies_before_recording_its_run_says_why_on_the_run(job_store):
    """It read "training process exited with code 1": the reason (here a stored config it cannot read, in the store
    before this check) was only in the run's log."""
    run_id = job_store.create_run(new_experiment(job_store), {"epochs": "many"})

    assert supervise(job_store, run_id, get_settings()) is RunStatus.FAILED

    error = job_store.get_run(run_id).error
    assert error.startswith("training process exited with code 1: ") and "epochs must be a whole number" in error, error


def test_cancelling_a_queued_run_revokes_it(job_store):
    experiment_id = new_experiment(job_store)
    run_id = tasks.start_run(job_store, experiment_id, {"epochs": 1})
    job_id = job_store.get_run(run_id).job_id

    tasks.cancel_run(job_store, run_id)
    assert tasks.huey.is_revoked(job_id)  # the queue drops the job; a worker skipping a cancelled run is only the backstop
    worker = start_worker("--workers", "1")
    try:
        wait_for(lambda: tasks.huey.pending_count() == 0, timeout=30, what="the queue to drain")
    finally:
        stop_worker(worker)

    run = job_store.get_run(run_id)
    assert (run.status, run.attempt, run.started_at) == (RunStatus.CANCELLED, 0, None)
    assert tasks.huey.result(job_id) is None  # never executed: a job that ran would have stored the run's status
    assert job_store.verify_integrity() == []


def test_a_killed_worker_leaves_its_run_failed_as_lost(job_store):
    experiment_id = new_experiment(job_store)
    doomed = start_worker("--workers", "1")
    run_id = tasks.start_run(job_store, experiment_id, LONG_RUN)
    wait_for(lambda: "loss" in job_store.get_run(run_id).metrics, timeout=30, what="the run to log metrics")

    training_pid = int(wait_for(lambda: _training_pid(run_id), what="the training process to start"))
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    survivor = start_worker("--workers", "1")
    try:
        (run,) = wait_until_terminal(job_store, [run_id], timeout=60)
    finally:
        stop_worker(survivor)

    assert run.status is RunStatus.FAILED
    assert run.error.startswith("worker lost:")
    assert job_store.get_experiment(experiment_id).status == "failed"
    assert job_store.get_run_metrics(run_id).summary["loss"].count > 0
    wait_for(lambda: not _alive(training_pid), timeout=10, what="the orphaned training process to die")
    assert job_store.verify_integrity() == []


def _training_pid(run_id: int) -> str | None:
    match = re.search(r"started training process (\d+)", read_log(get_settings(), run_id))
    return match and match.group(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_worker_counts_a_runs_training_steps_not_its_system_samples(store, make_experiment, make_run):
    """A command reporting through the SDK logs its steps past the trainer (which counted none); system samples are
    numbered by sample, so a long run of few steps has more of them than steps."""
    run_id = make_run(make_experiment(), status="running")
    with MetricWriter(store) as writer:
        writer.log_series(run_id, "loss", [1, 2, 3], [0.9, 0.5, 0.3])
        writer.log_series(run_id, "system/cpu_percent", list(range(1, 51)), [50.0] * 50)

    assert train_process._steps(store, run_id, counted=0) == 3
    assert train_process._steps(store, run_id, counted=7) == 7  # what the trainer counted, when it knows more


TRAIN_WITH_A_RELATIVE_DATA_DIR = """
import json, sys
from core import open_store
from jobs.tasks import start_run
from tests.jobs.conftest import wait_until_terminal
store = open_store()
experiment = store.create_experiment({"name": "same folder", "dataset": sys.argv[1]})
(run,) = wait_until_terminal(store, [start_run(store, experiment, {"epochs": 1})], timeout=150)
print(json.dumps({"status": run.status.value, "error": run.error, "path": store.get_adapter(run.adapter.id).path}))
"""


def test_an_artifact_root_that_is_the_data_folders_own_adapters_folder_keeps_the_adapter(tmp_path):
    """`data` and its absolute spelling are one folder: the worker must not take the registered adapter for a copy."""
    (tmp_path / "data" / "adapters").mkdir(parents=True)
    env = {**os.environ, "TUNEDECK_DATA_DIR": "data", "TUNEDECK_ARTIFACT_ROOT": str(tmp_path / "data" / "adapters")}
    env.update(TUNEDECK_EMBEDDED_WORKER="1", TUNEDECK_WORKER_IDLE_EXIT="2", PYTHONPATH=str(ROOT))

    done = subprocess.run(
        [sys.executable, "-c", TRAIN_WITH_A_RELATIVE_DATA_DIR, SAMPLE], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )

    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "completed", outcome["error"]
    kept = tmp_path / "data" / "adapters" / "run-1"
    assert Path(outcome["path"]).resolve() == kept and any(kept.iterdir())  # registered, and still on disk
