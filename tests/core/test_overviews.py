"""Curve overviews (core.overviews): long series of ended runs kept downsampled, answering curve reads exactly as
reading every point would, and giving way the moment their series changes."""

import time
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from core import overviews
from core.duckdb_store import DuckDBStore

SAMPLE = "data/sample/sentiment.csv"
START = datetime(2026, 11, 30, 12, 0)


def long_series(run_id: int, key: str, steps: int, seed: int, spacing: int = 1) -> pl.DataFrame:
    """Noisy values (no two alike, so a bucket's lowest and highest point is one point) at steps 0, spacing, ..."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "run_id": run_id,
            "key": key,
            "step": np.arange(steps) * spacing,
            "value": np.cumsum(rng.normal(size=steps)),
            "wall_time": [START + timedelta(seconds=i) for i in range(steps)],
        }
    )


def run_with(store: DuckDBStore, experiment_id: int, series: list[tuple[str, int, int]], status: str = "completed") -> int:
    run_id = store.create_run(experiment_id, {"learning_rate": 0.01})
    store.mark_running(run_id, worker="test:1")
    for key, steps, spacing in series:
        store.log_metrics(long_series(run_id, key, steps, seed=run_id * 7 + steps, spacing=spacing))
    if status == "completed":
        store.complete_run(run_id)
    elif status == "failed":
        store.fail_run(run_id, "boom")
    return run_id


def overview_rows(store: DuckDBStore) -> pl.DataFrame:
    with store.reading() as con:
        return con.sql("SELECT run_id, key, level, count(*) AS points FROM overview_points GROUP BY ALL ORDER BY ALL").pl()


@pytest.fixture
def sweep(backing: DuckDBStore) -> tuple[DuckDBStore, list[int]]:
    """Ended runs of different lengths and step spacings, a short metric beside the long ones, and one still running."""
    experiment_id = backing.create_experiment({"name": "sweep", "dataset": SAMPLE})
    run_ids = [
        run_with(backing, experiment_id, [("loss", 5_000, 1), ("eval_loss", 30, 100)]),
        run_with(backing, experiment_id, [("loss", 7_321, 3), ("lr", 2_500, 1)]),
        run_with(backing, experiment_id, [("loss", 12_000, 1)], status="failed"),
        run_with(backing, experiment_id, [("loss", 4_000, 2)], status="running"),
    ]
    return backing, run_ids


def test_a_curve_read_from_overviews_is_exactly_the_answer_of_reading_every_point(sweep):
    store, run_ids = sweep
    bucket_counts = (1, 10, 25, 30, 50, 100, 125, 250, 400, 500)
    from_points = {b: store.get_metric_series(run_ids, max_points=2 * b) for b in bucket_counts}

    store.build_overviews()

    built = overview_rows(store)
    assert set(built["level"]) == set(overviews.LEVELS)
    assert set(zip(built["run_id"], built["key"], strict=True)) == {
        (run_ids[0], "loss"), (run_ids[1], "loss"), (run_ids[1], "lr"), (run_ids[2], "loss")
    }  # ended runs' long series only: not the running run's, not 30 eval points
    for b in bucket_counts:
        assert store.get_metric_series(run_ids, max_points=2 * b).equals(from_points[b]), b


def test_a_read_whose_buckets_divide_a_level_is_answered_from_the_overview(sweep):
    store, run_ids = sweep
    store.build_overviews()
    # Behind the store's back, every stored point of the first run moves up by 1,000: only a read of the points sees it.
    store._write(lambda con: con.execute("UPDATE metrics SET value = value + 1000 WHERE run_id = ?", [run_ids[0]]))

    def highest(buckets: int) -> float:
        return store.get_metric_series(run_ids[:1], ["loss"], max_points=2 * buckets)["value"].max()

    assert highest(50) < 1000 and highest(250) < 1000  # from the overviews of 50 and 500 buckets
    assert highest(30) > 1000  # 30 divides no level: every point is read


def test_a_new_point_or_a_rewritten_step_makes_an_overview_give_way(sweep):
    store, run_ids = sweep
    store.build_overviews()
    run_id = run_ids[0]

    late = pl.DataFrame({"run_id": [run_id], "key": ["loss"], "step": [9_000], "value": [-500.0], "wall_time": [START]})
    store.log_metrics(late)  # a killed writer's journal replayed after the run ended: the store takes it
    read = store.get_metric_series([run_id], ["loss"], max_points=100)
    assert read["value"].min() == -500.0 and read["step"].max() == 9_000

    store.build_overviews()
    rewritten = late.with_columns(step=pl.lit(2_500, pl.Int64), value=pl.lit(800.0))  # same count, same last step
    store.log_metrics(rewritten)
    read = store.get_metric_series([run_id], ["loss"], max_points=100)
    assert read.filter(pl.col("step") == 2_500)["value"].to_list() == [800.0]
    with store.reading() as con:
        left = con.sql("SELECT count(*) FROM metric_overviews WHERE run_id = ? AND key = 'loss'", params=[run_id]).fetchall()
    assert left == [(0,)]


def test_the_store_builds_overviews_by_itself_once_it_is_idle(sweep):
    store, run_ids = sweep
    deadline = time.monotonic() + 10
    while overview_rows(store).is_empty() and time.monotonic() < deadline:
        time.sleep(0.1)

    assert set(overview_rows(store)["run_id"]) == set(run_ids[:3])


def test_upkeep_goes_in_passes_of_bounded_size_and_a_write_waits_for_one_pass_only(sweep, monkeypatch):
    store, run_ids = sweep
    monkeypatch.setattr(overviews, "BATCH_POINTS", 3_000)
    store._write(lambda con: (con.execute("DELETE FROM overview_points"), con.execute("DELETE FROM metric_overviews")))  # the committer may have begun

    passes = 0
    while store._write(overviews.build, quiet=True):
        passes += 1
        assert len(overview_rows(store)) < 8  # 4 series x 2 levels in all

    assert passes >= 2 and len(overview_rows(store)) == 8


@pytest.mark.parametrize(("wanted", "asked"), [(500, 500), (400, 250), (300, 250), (120, 100), (50, 50), (49, 25), (7, 5)])
def test_charts_ask_for_bucket_counts_an_overview_answers(wanted, asked):
    assert overviews.curve_buckets(wanted) == asked
    assert overviews.level_for(asked) is not None
