"""The write path under abuse: logging scripts killed at random moments, a client paused mid-write, jobs gone astray."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from core import remote, tracking
from core.errors import InvalidTransitionError, ValidationError
from core.remote import RemoteStore
from core.settings import get_settings
from core.status import RunStatus
from jobs import train_process
from jobs.reaper import MissingJobs, Outages, reap

ROOT = Path(__file__).resolve().parents[2]
KILLS = 20
AT_ONCE = 4

LOGGER = """
import sys
from core import tracking

with tracking.start_run("killed at random", params={"seed": int(sys.argv[1])}) as run:
    print("run", run.id, flush=True)
    step = 0
    while True:
        step += 1
        run.log(step, {"loss": 1.0 / step, "step_squared": float(step * step)})
        print("logged", step, flush=True)  # only once log() has returned
"""


def start_script(code: str, data_dir: Path, *args: str, **env: str) -> subprocess.Popen:
    errors = (data_dir / f"script-{time.monotonic_ns()}.err").open("w")
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        env={**os.environ, "TUNEDECK_DATA_DIR": str(data_dir), **env},
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )


def first_line(script: subprocess.Popen, data_dir: Path) -> list[str]:
    line = script.stdout.readline().split()
    assert line, "the script ended early: " + "".join(path.read_text() for path in data_dir.glob("script-*.err"))[-3000:]
    return line


def kill_at_random(script: subprocess.Popen, delay: float, data_dir: Path) -> tuple[int, int]:
    """Read the script's progress, SIGKILL it `delay` seconds after its first step; (run ID, last step logged).
    Every step printed was logged: the script prints a step only once its log() has returned."""
    run_id = int(first_line(script, data_dir)[1])
    last = 0
    killer = None
    for line in script.stdout:
        if not line.endswith("\n"):
            break  # cut short by the kill: that step may or may not have been logged
        last = int(line.split()[1])
        if killer is None:
            killer = threading.Timer(delay, script.kill)
            killer.start()
    assert script.wait() == -signal.SIGKILL
    killer.join()
    return run_id, last


def wait_for_points(store: RemoteStore, run_id: int, steps: int, timeout: float = 60) -> pl.DataFrame:
    deadline = time.monotonic() + timeout
    while True:
        series = store.get_run_metrics(run_id).series
        if series.filter(pl.col("key") == "loss").height >= steps or time.monotonic() > deadline:
            return series
        time.sleep(0.2)


def test_every_point_whose_log_returned_survives_a_sigkill_at_any_moment(tmp_path):
    store = RemoteStore(tmp_path / "tunedeck.duckdb", idle_exit=60)
    moments = random.Random(12).sample([0.05 * tick for tick in range(2, 26)], KILLS)  # 0.1 s to 1.25 s in
    killed: list[tuple[int, int, float]] = []
    for first in range(0, KILLS, AT_ONCE):
        scripts = [(start_script(LOGGER, tmp_path, str(index)), moments[index]) for index in range(first, first + AT_ONCE)]
        results: list = [None] * len(scripts)

        def watch(index: int, script: subprocess.Popen, delay: float, results: list = results) -> None:
            results[index] = (*kill_at_random(script, delay, tmp_path), delay)

        threads = [threading.Thread(target=watch, args=(i, s, d)) for i, (s, d) in enumerate(scripts)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        killed += results

    assert None not in killed
    missing = {}
    for run_id, last, delay in killed:
        assert last > 0
        series = wait_for_points(store, run_id, last)  # the server replays what the killed writers journaled
        loss = series.filter(pl.col("key") == "loss").filter(pl.col("step") <= last)
        expected = pl.DataFrame({"step": range(1, last + 1)}).with_columns(value=1.0 / pl.col("step"))
        if loss.select("step", "value").sort("step").to_dicts() != expected.to_dicts():
            missing[f"run {run_id} killed {delay:.2f} s in"] = f"{loss.height} of {last} steps"
    assert missing == {}
    assert not list((tmp_path / "journal").glob("*.points"))  # every journal was replayed and removed
    assert store.verify_integrity() == []
    assert remote.stop(store.path)


PAUSED = """
import numpy as np
from core import tracking

with tracking.start_run("paused", params={}) as run:
    print("run", run.id, flush=True)
    for chunk in range(1000):
        if run.should_stop:
            break
        steps = np.arange(chunk * 200_000, (chunk + 1) * 200_000)
        run.writer.log_series(run.id, "loss", steps, np.full(steps.size, 0.5))
        print("writing", chunk, flush=True)  # then sends the 200,000 points: one stream of ~3 MB
        run.writer.flush()
print("stopped", flush=True)
"""
PAUSED_LOCK_TIMEOUT = 2.0  # the paused client's own; it stays paused for longer


def stored_loss(store, run_id: int) -> int:
    summary = store.get_run(run_id).metrics.get("loss")
    return summary.count if summary else 0


def test_a_client_paused_mid_write_blocks_nobody_and_is_then_handled_by_the_heartbeat_rules(tmp_path):
    store = RemoteStore(tmp_path / "tunedeck.duckdb", timeout=5, idle_exit=60)  # a write waiting 5 s fails
    paused = start_script(PAUSED, tmp_path, TUNEDECK_LOCK_TIMEOUT=str(PAUSED_LOCK_TIMEOUT))
    try:
        paused_run = int(first_line(paused, tmp_path)[1])
        for _ in range(20):  # stop it as it sends a batch: a stop that lands after the batch was stored is undone
            chunk = int(first_line(paused, tmp_path)[1])
            os.kill(paused.pid, signal.SIGSTOP)
            stopped_at = time.monotonic()
            if stored_loss(store, paused_run) < (chunk + 1) * 200_000:
                break
            os.kill(paused.pid, signal.SIGCONT)
        assert stored_loss(store, paused_run) < (chunk + 1) * 200_000, "never paused mid-write"

        with tracking.start_run("healthy", params={"lr": 0.1}, store=store) as healthy:
            for step in range(1, 11):
                healthy.log(step, {"loss": 1.0 / step})
        other = store.create_experiment({"name": "created meanwhile", "dataset": "d.csv"})
        meanwhile = time.monotonic() - stopped_at
        assert store.get_run(healthy.id).status is RunStatus.COMPLETED
        assert store.get_experiment(other).status.value == "created"
        assert meanwhile < store.timeout  # promptly: nothing waited on the paused client (its write is not stored)

        settings = get_settings().model_copy(update={"heartbeat_timeout": 3.0})
        time.sleep(max(0.0, 3.5 - (time.monotonic() - stopped_at)))  # past the heartbeat timeout and its lock timeout
        assert reap(store, settings) == [paused_run]
        assert store.get_run(healthy.id).status is RunStatus.COMPLETED  # never failed for someone else's stall
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    assert paused.stdout.readlines()[-1].strip() == "stopped"  # its heartbeat saw the run was failed
    assert paused.wait(timeout=60) == 0

    lost = store.get_run(paused_run)
    assert lost.status is RunStatus.FAILED and lost.error.startswith("worker lost:")
    assert store.verify_integrity() == []
    assert remote.stop(store.path)


@pytest.mark.parametrize("job_id", [None, "a-job-that-is-gone"])
def test_a_queued_run_whose_job_is_gone_is_failed_by_the_reaper_saying_so(store, clock, make_experiment, job_id):
    experiment_id = make_experiment()
    orphan = store.create_run(experiment_id, {})
    if job_id:
        store.set_job_id(orphan, job_id)
    waiting = store.create_run(experiment_id, {})
    store.set_job_id(waiting, "a-live-job")
    settings = get_settings().model_copy(update={"heartbeat_timeout": 60.0, "heartbeat_interval": 2.0})
    looks = MissingJobs(clock)

    assert reap(store, settings, lambda: ["a-live-job"], looks) == []  # young runs are left alone
    clock.advance(120)
    assert reap(store, settings, lambda: ["a-live-job"], looks) == [orphan]  # its job missed by two looks 120 s apart

    failed = store.get_run(orphan)
    assert failed.status is RunStatus.FAILED
    expected = f"its job {job_id} is not in the queue the workers read" if job_id else "it was never put on the queue"
    assert expected in failed.error
    assert store.get_run(waiting).status is RunStatus.QUEUED


def test_a_run_whose_job_a_worker_has_just_taken_is_not_failed_as_having_lost_it(store, clock, make_experiment):
    """Between taking a job off the queue and marking its run running, a worker's run is queued with no job in the
    queue: a reaper's look then must not fail it (a run queued longer than the heartbeat timeout, say)."""
    run_id = store.create_run(make_experiment(), {})
    store.set_job_id(run_id, "taken-by-a-worker")
    settings = get_settings().model_copy(update={"heartbeat_timeout": 60.0, "heartbeat_interval": 2.0})
    looks = MissingJobs(clock)
    clock.advance(120)

    assert reap(store, settings, list, looks) == []  # the job has just left the queue
    store.mark_running(run_id, "w:1")  # the worker that took it
    clock.advance(settings.heartbeat_interval)

    assert reap(store, settings, list, looks) == []
    assert store.get_run(run_id).status is RunStatus.RUNNING


@pytest.mark.parametrize("seconds", ["60", -1, 0, float("nan"), True])
def test_the_reapers_store_calls_refuse_an_age_that_is_not_a_positive_number(store, unchanged, seconds):
    with pytest.raises(ValidationError, match=r"the age of a queued run must be a positive number of seconds, got"):
        store.fail_queued_without_job([], seconds)
    with pytest.raises(ValidationError, match=r"the silence allowed must be a positive number of seconds, got"):
        store.fail_stale_runs(seconds)
    unchanged()


def test_a_run_end_whose_owner_is_killed_mid_request_is_asked_of_the_next_owner(tmp_path):
    """The owner is paused with the end in flight, then killed: leaving the block asks its successor once more, and the
    run is completed with every point (the first try was lost, or recorded: either way, once)."""
    store = RemoteStore(tmp_path / "tunedeck.duckdb", timeout=30, idle_exit=60)
    run = tracking.start_run("owner killed at the end", params={"lr": 0.1}, store=store)
    for step in range(5):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
    owner = int(Path(f"{remote.address_for(store.path)}.lock").read_text())
    os.kill(owner, signal.SIGSTOP)
    threading.Timer(1.0, os.kill, (owner, signal.SIGKILL)).start()

    run.__exit__(None, None, None)  # raised StoreError "the store server stopped in the middle..." before

    ended = store.get_run(run.id)
    assert ended.status is RunStatus.COMPLETED and ended.metrics["loss"].count == 5
    assert store.get_experiment(ended.experiment_id).run_count == 1
    assert remote.stop(store.path)


def test_a_run_cancelled_from_the_dashboard_leaves_its_block_quietly_with_its_points(store):
    with tracking.start_run("cancelled meanwhile", store=store) as run:
        run.log({"loss": 0.5}, step=1)
        store.cancel_run(run.id)  # before any heartbeat could tell the script
    assert run.should_stop
    cancelled = store.get_run(run.id)
    assert cancelled.status is RunStatus.CANCELLED and cancelled.metrics["loss"].count == 1


def test_the_scripts_own_error_is_not_replaced_when_its_run_was_ended_elsewhere(store):
    with pytest.raises(ValueError, match="the script's own"):
        with tracking.start_run("ended elsewhere", store=store) as run:
            store.cancel_run(run.id)
            raise ValueError("the script's own")
    assert store.get_run(run.id).status is RunStatus.CANCELLED


def test_a_run_start_whose_owner_is_killed_mid_request_is_asked_of_the_next_owner(tmp_path):
    store = RemoteStore(tmp_path / "tunedeck.duckdb", timeout=30, idle_exit=60)
    experiment = store.create_experiment({"name": "owner killed at the start", "dataset": "d.csv"})
    owner = int(Path(f"{remote.address_for(store.path)}.lock").read_text())
    os.kill(owner, signal.SIGSTOP)
    threading.Timer(1.0, os.kill, (owner, signal.SIGKILL)).start()

    with tracking.start_run(experiment, params={"lr": 0.1}, store=store) as run:  # raised OwnerLostError before
        run.log({"loss": 0.5}, step=1)

    assert store.get_run(run.id).status is RunStatus.COMPLETED
    assert store.get_experiment(experiment).run_count == 1
    assert remote.stop(store.path)


def test_a_start_recorded_by_an_owner_that_stopped_before_answering_is_the_run_the_script_gets(store):
    """The owner recorded the start and stopped before its answer arrived (the transport's failure, injected here):
    asking again would start a second run, so the SDK finds the one this process was never told of."""
    from core.errors import OwnerLostError

    recorded = []

    def answer_lost(*args, **kwargs):
        recorded.append(type(store).begin_run(store, *args, **kwargs))
        raise OwnerLostError("the store server stopped in the middle of an operation (was it killed?)")

    store.begin_run = answer_lost
    with tracking.start_run("answer lost", params={"lr": 0.1}, store=store) as run:
        run.log({"loss": 0.5}, step=1)

    assert run.id == recorded[0]
    runs = store.list_runs(store.get_run(run.id).experiment_id)
    assert [(each.id, each.status) for each in runs] == [(run.id, RunStatus.COMPLETED)]


def test_an_end_recorded_by_an_owner_that_stopped_before_answering_keeps_its_adapter(store, tmp_path_factory):
    """The owner registered the adapter and stopped before its answer arrived (the transport's failure, injected): the
    second try is refused as already done, and the copy the registered adapter points at must stay."""
    from core.errors import OwnerLostError

    folder = tmp_path_factory.mktemp("saved-elsewhere")  # outside the data folder: it is copied in when the run ends
    (folder / "adapter_model.safetensors").write_bytes(b"weights")

    def answer_lost(*args, **kwargs):
        type(store).end_run(store, *args, **kwargs)
        raise OwnerLostError("the store server stopped in the middle of an operation (was it killed?)")

    with tracking.start_run("end answer lost", store=store) as run:
        run.log({"loss": 0.5}, step=1)
        run.register_adapter(folder, base_model="gpt2")
        store.end_run = answer_lost

    (adapter,) = store.list_adapters()
    assert store.get_run(run.id).status is RunStatus.COMPLETED and adapter.run_id == run.id
    assert (Path(adapter.path) / "adapter_model.safetensors").read_bytes() == b"weights"


def test_a_reaper_that_has_just_started_judges_silence_only_a_heartbeat_timeout_later(store, clock, make_experiment):
    """A worker restarted as the database came back, or the app's "check now" right after, cannot tell that nobody's
    heartbeat got through a moment ago: a run silent through the outage is not failed at once."""
    run_id = store.create_run(make_experiment(), {})
    store.mark_running(run_id, "gpu-b:1")  # another machine's worker
    clock.advance(120)  # two minutes without a heartbeat
    settings = get_settings().model_copy(update={"heartbeat_timeout": 60.0, "heartbeat_interval": 2.0})
    just_started = Outages(lambda: clock().timestamp())

    assert reap(store, settings, outages=just_started) == []
    assert store.get_run(run_id).status is RunStatus.RUNNING
    assert 0 < just_started.judged_in(60.0) < 60  # what "Check for lost workers now" says meanwhile
    clock.advance(60)  # still silent a heartbeat timeout after the reaper started: lost indeed
    assert just_started.judged_in(60.0) == 0
    assert reap(store, settings, outages=just_started) == [run_id]
    assert store.get_run(run_id).error.startswith("worker lost: gpu-b:1 sent no heartbeat")


def test_a_training_end_whose_first_try_committed_before_its_answer_was_lost_is_that_runs_outcome(store, make_experiment, tmp_path):
    """The retry of complete_run finds the run completed: by this process's own first try, so no "not recorded"."""
    run_id = store.create_run(make_experiment(), {})
    store.mark_running(run_id, "w:1")
    (tmp_path / "adapter").mkdir()
    spec = {"path": str(tmp_path / "adapter"), "base_model": "tiny-base", "size_bytes": 1, "checksum": "sha256:x"}
    first = store.complete_run(run_id, spec)  # committed; say its answer never arrived

    again = train_process._completed(store, run_id, spec)

    assert (again.id, again.version) == (first.id, first.version)
    failed = store.create_run(make_experiment(), {})
    store.fail_run(failed, "its worker was lost")
    with pytest.raises(InvalidTransitionError):  # ended otherwise: that outcome stands, and says so
        train_process._completed(store, failed, None)
