"""The status lifecycle: run transitions and the experiment status that follows from them."""

import itertools
import multiprocessing
from contextlib import nullcontext
from types import SimpleNamespace

import duckdb
import pytest

from core.errors import InvalidTransitionError
from core.remote import RemoteStore
from core.sql_store import _STATUS_FROM_COUNTERS
from core.status import ExperimentStatus, RunStatus, any_active, experiment_status
from tests.stores import serving


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({}, "created"),
        ({RunStatus.QUEUED: 1}, "running"),
        ({RunStatus.RUNNING: 1, RunStatus.COMPLETED: 3}, "running"),
        ({RunStatus.COMPLETED: 1, RunStatus.FAILED: 5, RunStatus.CANCELLED: 2}, "completed"),
        ({RunStatus.FAILED: 2, RunStatus.CANCELLED: 1}, "failed"),
        ({RunStatus.CANCELLED: 3}, "cancelled"),
        ({RunStatus.COMPLETED: 0}, "created"),
    ],
)
def test_experiment_status_rules(counts, expected):
    assert experiment_status(counts) == expected


@pytest.mark.parametrize("statuses", [list(chosen) for size in range(4) for chosen in itertools.combinations(RunStatus, size)])
def test_an_experiment_is_active_exactly_when_one_of_its_runs_is(statuses):
    """Pages refresh themselves while something is active, asking the experiment or its runs: the answers agree."""
    runs = [SimpleNamespace(status=status) for status in statuses]

    assert experiment_status(dict.fromkeys(statuses, 1)).is_active == any_active(runs)


@pytest.mark.parametrize("counts", list(itertools.product([0, 1, 2], repeat=4)))
def test_the_store_derives_the_same_status_in_sql_as_the_rules(counts):
    """The store moves an experiment's status with its counters in one UPDATE; its CASE must be these rules."""
    active, completed, failed, cancelled = counts
    by_status = {RunStatus.RUNNING: active, RunStatus.COMPLETED: completed, RunStatus.FAILED: failed, RunStatus.CANCELLED: cancelled}
    con = duckdb.connect()
    con.execute("CREATE TABLE experiments (active_runs INT, completed_runs INT, failed_runs INT, cancelled_runs INT)")
    con.execute("INSERT INTO experiments VALUES (?, ?, ?, ?)", list(counts))

    (derived,) = con.execute(f"SELECT {_STATUS_FROM_COUNTERS} FROM experiments", [0, 0, 0, 0]).fetchone()

    assert derived == experiment_status(by_status).value


def test_experiment_with_no_runs_is_created(store, make_experiment):
    assert store.get_experiment(make_experiment()).status is ExperimentStatus.CREATED


def test_experiment_becomes_running_when_a_run_starts(store, make_experiment, make_run):
    experiment_id = make_experiment()
    make_run(experiment_id, status="completed")
    make_run(experiment_id, status="queued")

    assert store.get_experiment(experiment_id).status is ExperimentStatus.RUNNING


def test_experiment_completes_when_all_runs_are_terminal_and_one_completed(store, make_experiment, make_run):
    experiment_id = make_experiment()
    make_run(experiment_id, status="failed")
    make_run(experiment_id, status="cancelled")
    running = make_run(experiment_id, status="running")
    assert store.get_experiment(experiment_id).status is ExperimentStatus.RUNNING

    store.complete_run(running)

    assert store.get_experiment(experiment_id).status is ExperimentStatus.COMPLETED


def test_experiment_fails_when_all_runs_failed_keeping_the_last_error(store, make_experiment, make_run):
    experiment_id = make_experiment()
    make_run(experiment_id, status="failed", error="first failure")
    make_run(experiment_id, status="failed", error="ValueError: second failure\nwith details")

    experiment = store.get_experiment(experiment_id)

    assert experiment.status is ExperimentStatus.FAILED
    assert experiment.last_error == "ValueError: second failure"


def test_experiment_is_cancelled_when_all_runs_were_cancelled(store, make_experiment, make_run):
    experiment_id = make_experiment()
    make_run(experiment_id, status="cancelled")
    make_run(experiment_id, status="cancelled")

    assert store.get_experiment(experiment_id).status is ExperimentStatus.CANCELLED


def test_run_moves_queued_running_completed_with_timings_and_attempt(store, make_experiment):
    run_id = store.create_run(make_experiment(), {})

    running = store.mark_running(run_id, worker="host:123")
    store.complete_run(run_id)
    done = store.get_run(run_id)

    assert (running.status, running.attempt, running.worker) == (RunStatus.RUNNING, 1, "host:123")
    assert done.status is RunStatus.COMPLETED
    assert done.created_at < done.started_at < done.ended_at


def test_failed_run_keeps_one_line_error_and_full_traceback(store, make_experiment):
    run_id = store.create_run(make_experiment(), {})
    store.mark_running(run_id, worker="w")

    store.fail_run(run_id, "KeyError: 'label'", traceback="Traceback (most recent call last):\n  ...\nKeyError: 'label'")

    run = store.get_run(run_id)
    assert run.error == "KeyError: 'label'"
    assert run.traceback.startswith("Traceback")


@pytest.mark.parametrize("traceback", [None, "Traceback (most recent call last):\n  ...\nValueError: shape"])
def test_a_failure_of_several_lines_shows_the_first_and_keeps_the_rest_with_the_traceback(store, make_experiment, traceback):
    """Only the first line was kept: "while running step 31 of 1000" was nowhere."""
    run_id = store.create_run(make_experiment(), {})
    store.mark_running(run_id, worker="w")

    store.fail_run(run_id, "CUDA out of memory\n\n  while running step 31 of 1000\nbatch shape (8, 512)", traceback=traceback)

    run = store.get_run(run_id)
    assert run.error == "CUDA out of memory"
    whole = "CUDA out of memory\n  while running step 31 of 1000\nbatch shape (8, 512)"
    assert run.traceback == (f"{whole}\n\n{traceback}" if traceback else whole)


@pytest.mark.parametrize(
    ("reach", "action"),
    [
        ("queued", "complete_run"),
        ("completed", "fail_run"),
        ("completed", "cancel_run"),
        ("failed", "mark_running"),
        ("cancelled", "complete_run"),
        ("running", "mark_running"),
    ],
)
def test_illegal_transitions_raise_a_clear_error(store, make_experiment, make_run, reach, action):
    run_id = make_run(make_experiment(), status=reach)
    call = {
        "complete_run": lambda: store.complete_run(run_id),
        "fail_run": lambda: store.fail_run(run_id, "x"),
        "cancel_run": lambda: store.cancel_run(run_id),
        "mark_running": lambda: store.mark_running(run_id, "w"),
    }[action]

    with pytest.raises(InvalidTransitionError, match=f"run {run_id} is {reach}; it cannot become"):
        call()
    assert store.get_run(run_id).status == reach


def test_heartbeat_reports_a_cancel_to_the_worker(store, make_experiment, make_run):
    run_id = make_run(make_experiment(), status="running")
    assert store.heartbeat(run_id) is RunStatus.RUNNING

    store.cancel_run(run_id)

    assert store.heartbeat(run_id) is RunStatus.CANCELLED


def test_a_heartbeat_after_a_run_ended_leaves_its_last_beat_before_its_end(store, make_experiment, make_run):
    """A worker's beat crossing the reaper's failure moved the failed run's last heartbeat past its end."""
    run_id = make_run(make_experiment(), status="running")
    store.fail_run(run_id, "worker lost")

    assert store.heartbeat(run_id) is RunStatus.FAILED

    run = store.get_run(run_id)
    assert run.heartbeat_at < run.ended_at


def test_runs_with_a_stale_heartbeat_are_failed_as_lost(store, clock, make_experiment, make_run):
    experiment_id = make_experiment()
    silent = make_run(experiment_id, status="running")
    clock.advance(120)
    alive = make_run(experiment_id, status="running")

    lost = store.fail_stale_runs(60)

    assert lost == [silent]
    assert store.get_run(silent).error.startswith("worker lost: test-worker sent no heartbeat since")
    assert store.get_run(alive).status is RunStatus.RUNNING


def _finish(path: str, run_id: int, outcome: str, barrier) -> None:
    store = RemoteStore(path)
    barrier.wait()
    if outcome == "completed":
        store.complete_run(run_id)
    else:
        store.fail_run(run_id, f"run {run_id} broke")


@pytest.mark.parametrize("outcomes", [("completed", "completed"), ("failed", "failed"), ("completed", "failed")])
def test_two_runs_finishing_concurrently_leave_a_consistent_status(store, backing, make_experiment, make_run, outcomes):
    experiment_id = make_experiment()
    run_ids = [make_run(experiment_id, status="running") for _ in outcomes]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(outcomes))
    workers = [
        context.Process(target=_finish, args=(str(backing.path), run_id, outcome, barrier))
        for run_id, outcome in zip(run_ids, outcomes, strict=True)
    ]
    with nullcontext() if isinstance(store, RemoteStore) else serving(backing):  # other processes need its server
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)

    assert [worker.exitcode for worker in workers] == [0, 0]
    assert [store.get_run(run_id).status.value for run_id in run_ids] == list(outcomes)
    expected = "completed" if "completed" in outcomes else "failed"
    assert store.get_experiment(experiment_id).status == expected
