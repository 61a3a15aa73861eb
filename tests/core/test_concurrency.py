"""Several processes share the store: writers log metrics while readers list and compare."""

import multiprocessing
import threading
import time
import traceback
from datetime import datetime

import polars as pl

from core import remote
from core.remote import RemoteStore
from core.writer import MetricWriter

STEPS = 300
KEYS = ("loss", "learning_rate", "eval_loss")


def _writer(path: str, run_ids: list[int], results) -> None:
    store = RemoteStore(path)
    try:
        with MetricWriter(store, flush_points=50, flush_seconds=0.05) as writer:
            for step in range(1, STEPS + 1):
                for run_id in run_ids:
                    writer.log(run_id, step, {key: 1.0 / step for key in KEYS})
                if step % 100 == 0:
                    for run_id in run_ids:
                        store.heartbeat(run_id)
        results.put(("writer", None))
    except Exception:
        results.put(("writer", traceback.format_exc()))


def _reader(path: str, experiment_id: int, run_ids: list[int], seconds: float, results) -> None:
    store = RemoteStore(path)
    deadline = time.monotonic() + seconds
    reads = 0
    try:
        while time.monotonic() < deadline:
            store.list_experiments(page_size=50)
            store.get_experiment_detail(experiment_id)
            store.compare_runs(run_ids[:4])
            store.get_run_metrics(run_ids[0], keys=["loss"])
            reads += 4
        results.put(("reader", reads))
    except Exception:
        results.put(("reader", traceback.format_exc()))


def test_concurrent_writers_and_readers_lose_no_points_and_see_no_errors(store_path):
    store = RemoteStore(store_path, idle_exit=30)
    experiment_id = store.create_experiment({"name": "busy", "dataset": "d.csv"})
    writer_runs = [[store.begin_run(experiment_id, worker="test") for _ in range(2)] for _ in range(3)]
    all_runs = [run_id for runs in writer_runs for run_id in runs]
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [context.Process(target=_writer, args=(str(store_path), runs, results)) for runs in writer_runs]
    processes += [
        context.Process(target=_reader, args=(str(store_path), experiment_id, all_runs, 6.0, results)) for _ in range(2)
    ]

    for process in processes:
        process.start()
    outcomes = [results.get(timeout=180) for _ in processes]
    for process in processes:
        process.join(timeout=30)

    errors = [outcome for kind, outcome in outcomes if isinstance(outcome, str)]
    assert errors == []
    assert all(outcome > 0 for kind, outcome in outcomes if kind == "reader")
    for run_id in all_runs:
        run = store.get_run(run_id)
        assert {key: summary.count for key, summary in run.metrics.items()} == {key: STEPS for key in KEYS}
        assert store.get_run_metrics(run_id).series.height == STEPS * len(KEYS)
    assert store.verify_integrity() == []
    assert remote.stop(store_path)


def _at_once(action, items) -> list[Exception]:
    errors = []

    def act(item) -> None:
        try:
            action(item)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=act, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_writes_that_arrive_together_share_one_commit(backing, make_experiment):
    experiment_id = make_experiment()
    run_ids = [backing.create_run(experiment_id, {}) for _ in range(40)]
    before = backing.db.groups, backing.db.writes

    assert _at_once(lambda run_id: backing.mark_running(run_id, "w"), run_ids) == []

    groups, writes = backing.db.groups - before[0], backing.db.writes - before[1]
    assert writes == 40 and groups < 40  # queued while a commit ran, they went into the next one together
    assert [run.status.value for run in backing.list_runs(experiment_id)] == ["running"] * 40


def test_a_write_that_fails_in_a_shared_commit_fails_alone(backing, make_experiment):
    experiment_id = make_experiment()
    run_ids = [backing.create_run(experiment_id, {}) for _ in range(40)]

    errors = _at_once(lambda run_id: backing.mark_running(run_id if run_id != run_ids[7] else 999_999, "w"), run_ids)

    assert [str(error) for error in errors] == ["no run with ID 999999"]
    statuses = [run.status.value for run in backing.list_runs(experiment_id)]
    assert statuses.count("running") == 39 and statuses.count("queued") == 1
    assert backing.verify_integrity() == []


def test_a_one_statement_read_sees_the_open_snapshot_inside_one_and_the_last_commit_outside(backing, make_experiment):
    run_id = backing.create_run(make_experiment(), {})
    backing.mark_running(run_id, "w")

    def log(step: int) -> None:
        backing.log_metrics(
            pl.DataFrame({"run_id": [run_id], "key": ["loss"], "step": [step], "value": [1.0 / step], "wall_time": [datetime.now()]})
        )

    log(1)
    with backing.reading():
        assert backing.read_log(run_id) == ""  # the snapshot is taken at its first statement, as in PostgreSQL
        log(2)  # committed by the committer thread while this thread's snapshot is open
        assert backing.get_metric_series([run_id], max_points=None)["step"].to_list() == [1]
    assert backing.get_metric_series([run_id], max_points=None)["step"].to_list() == [1, 2]
