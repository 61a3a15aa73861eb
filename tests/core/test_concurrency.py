"""Several processes share the store: writers log metrics while readers list and compare."""

import multiprocessing
import time
import traceback

import pytest

from core.duckdb_store import DuckDBStore
from core.errors import StoreError
from core.writer import MetricWriter

STEPS = 300
KEYS = ("loss", "learning_rate", "eval_loss")


def _store(path: str, served: bool) -> DuckDBStore:
    return DuckDBStore(path, server_idle_exit=2.0 if served else None)


def _writer(path: str, served: bool, run_ids: list[int], results) -> None:
    store = _store(path, served)
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


def _reader(path: str, served: bool, experiment_id: int, run_ids: list[int], seconds: float, results) -> None:
    store = _store(path, served)
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


@pytest.mark.parametrize("served", [False, True], ids=["opening the file", "through the store server"])
def test_concurrent_writers_and_readers_lose_no_points_and_see_no_errors(store, make_experiment, make_run, served):
    experiment_id = make_experiment()
    writer_runs = [[make_run(experiment_id, status="running") for _ in range(2)] for _ in range(3)]
    all_runs = [run_id for runs in writer_runs for run_id in runs]
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [context.Process(target=_writer, args=(str(store.path), served, runs, results)) for runs in writer_runs]
    processes += [
        context.Process(target=_reader, args=(str(store.path), served, experiment_id, all_runs, 6.0, results)) for _ in range(2)
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


def test_a_read_session_opens_the_store_once_for_several_reads(store, make_experiment, make_run, monkeypatch):
    import core.db

    experiment_id = make_experiment()
    run_ids = [make_run(experiment_id) for _ in range(3)]
    opens = []
    real_open = core.db._open
    monkeypatch.setattr(core.db, "_open", lambda *args, **kwargs: opens.append(args) or real_open(*args, **kwargs))

    with store.reading():
        store.get_experiment_detail(experiment_id)
        store.compare_runs(run_ids)
        store.list_experiments()

    assert len(opens) == 1


def test_writing_inside_a_read_session_is_a_clear_error(store):
    with store.reading(), pytest.raises(StoreError, match="cannot write to the store inside a read session"):
        store.create_experiment({"name": "x", "dataset": "d.csv"})
    assert store.list_experiments().total == 0
