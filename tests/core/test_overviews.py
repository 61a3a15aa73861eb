"""Curve overviews (core.overviews): long series of ended runs kept downsampled, answering curve reads as reading
every point would, and giving way the moment their series changes."""

import time
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from core import database, overviews
from core.database import UPKEEP_IDLE, Database
from core.duckdb_store import DuckDBStore
from tests.core.curves import as_set, power_of_two_read
from tests.waiting import wait_for

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
    wait_for(lambda: not overview_rows(store).is_empty(), timeout=10, what="the idle store to build overviews", every=0.1)

    assert set(overview_rows(store)["run_id"]) == set(run_ids[:3])


def test_upkeep_goes_in_passes_of_bounded_size(sweep, monkeypatch):
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


def series_of(run_id: int, key: str, steps, values) -> pl.DataFrame:
    steps = list(steps)
    return pl.DataFrame(
        {"run_id": run_id, "key": key, "step": steps, "value": [float(v) for v in values],
         "wall_time": [START + timedelta(seconds=i) for i in range(len(steps))]},
        schema_overrides={"step": pl.Int64},
    )


def ended_run_with(store: DuckDBStore, *series: pl.DataFrame) -> int:
    run_id = store.create_run(store.create_experiment({"name": f"e{time.monotonic_ns()}", "dataset": SAMPLE}), {})
    store.mark_running(run_id, worker="test:1")
    for points in series:
        store.log_metrics(points.with_columns(run_id=pl.lit(run_id, pl.Int64)))
    store.complete_run(run_id)
    return run_id


def test_tied_values_logged_in_step_order_give_the_same_points_both_ways_the_earliest_step_of_each_bucket(backing):
    """Which tied point a bucket keeps is the first met (core.overviews): for a series logged in order, in one row
    group, both ways meet the earliest first."""
    constant = series_of(0, "learning_rate", range(5_000), [1e-4] * 5_000)
    plateau = series_of(0, "accuracy", range(0, 15_000, 3), [round(i / 5_000, 1) for i in range(5_000)])
    run_id = ended_run_with(backing, constant, plateau)
    from_points = {b: backing.get_metric_series([run_id], max_points=2 * b) for b in (10, 50, 125, 500)}

    backing.build_overviews()

    for b, expected in from_points.items():
        assert backing.get_metric_series([run_id], max_points=2 * b).equals(expected), b
    flat = from_points[10].filter(pl.col("key") == "learning_rate")["step"].to_list()
    assert flat == list(range(0, 5_000, 500))  # a flat curve keeps its start: each bucket's earliest step


def float_buckets(step: int, buckets: int, last: int) -> int:
    return int(step * buckets / (last + 1))  # what bucketing in floating point gives


def test_steps_past_floating_points_precision_still_nest_exactly(backing):
    last = 3_000_000_000_000_007  # steps logged as microseconds, say: past 2^53, floating point rounds
    # A step whose bucket of 500 lies, in floating point, outside its bucket of 50, and two steps beside it
    # that share its bucket of 500 but not its bucket of 50: the nesting an overview relies on, broken.
    boundary = next(
        s for k in range(1, 50) for s in range(k * (last + 1) // 50 - 3_000, k * (last + 1) // 50 + 3_000)
        if float_buckets(s, 500, last) // 10 != float_buckets(s, 50, last)
    )
    beside = [
        s for s in range(boundary - 5_000, boundary + 5_000)
        if float_buckets(s, 500, last) == float_buckets(boundary, 500, last)
        and float_buckets(s, 50, last) != float_buckets(boundary, 50, last)
    ][:2]
    steps = sorted({*np.linspace(0, last, 2_100).astype(np.int64).tolist(), boundary, *beside, last})
    values = {step: i * 1e-6 for i, step in enumerate(steps)} | {boundary: -1_000.0, beside[0]: -2_000.0, beside[1]: 2_000.0}
    run_id = ended_run_with(backing, series_of(0, "loss", steps, [values[step] for step in steps]))
    from_points = {b: backing.get_metric_series([run_id], max_points=2 * b) for b in (10, 50)}

    backing.build_overviews()

    for b, expected in from_points.items():
        assert backing.get_metric_series([run_id], max_points=2 * b).equals(expected), b


def test_a_series_ending_at_the_largest_step_neither_fails_nor_holds_up_the_others(backing):
    huge = ended_run_with(backing, series_of(0, "loss", [*range(2_999), 2**63 - 1], [math_sin(i) for i in range(3_000)]))
    normal = ended_run_with(backing, series_of(0, "loss", range(3_000), [math_sin(i) for i in range(3_000)]))
    from_points = backing.get_metric_series([huge, normal], max_points=100)

    backing.build_overviews()

    assert set(overview_rows(backing)["run_id"]) == {huge, normal}
    assert backing.get_metric_series([huge, normal], max_points=100).equals(from_points)


def math_sin(i: int) -> float:
    return float(np.sin(i * 0.7) + i * 1e-6)


# -- the committer's upkeep (core.database) ----------------------------------------------------------


def test_upkeep_looks_at_every_run_at_open_then_only_at_runs_ended_or_given_points(tmp_path):
    calls = []
    db = Database(tmp_path / "t.duckdb", upkeep=lambda con, runs: calls.append(runs) or False)
    try:
        wait_for(lambda: calls == [None])
        db.write(lambda con: db.touch_points([7, 3]))
        wait_for(lambda: calls == [None, [3, 7]])
        db.write(lambda con: db.touch_ended([9]))
        wait_for(lambda: calls == [None, [3, 7], [9]])
        db.write(lambda con: con.execute("SELECT 1"))  # a heartbeat, a tag, a rename: nothing for upkeep
        time.sleep(3 * UPKEEP_IDLE)
        assert calls == [None, [3, 7], [9]]
    finally:
        db.close()


def test_a_failing_upkeep_is_logged_tried_again_later_and_holds_up_no_write(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(database, "UPKEEP_RETRY", 1.0)
    tries = []

    def upkeep(con, runs):
        tries.append(time.monotonic())
        if len(tries) == 1:
            raise RuntimeError("disk trouble")
        return False

    db = Database(tmp_path / "t.duckdb", upkeep=upkeep)
    try:
        wait_for(lambda: len(tries) == 1)
        assert db.write(lambda con: con.execute("SELECT 42").fetchall()) == [(42,)]
        wait_for(lambda: len(tries) == 2)
        assert tries[1] - tries[0] >= 1.0
        assert "store upkeep failed" in caplog.text
    finally:
        db.close()


# -- running runs: growing overviews, bucketed by powers of two --------------------------------------


def growing_rows(store: DuckDBStore, run_id: int) -> pl.DataFrame:
    with store.reading() as con:
        return con.sql(
            """SELECT p.key, count(*) AS points, any_value(g.last_step) AS last
               FROM growing_points p JOIN growing_overviews g USING (run_id, key) WHERE run_id = ? GROUP BY p.key ORDER BY p.key""",
            params=[run_id],
        ).pl()


def test_a_running_runs_curve_is_bucketed_by_powers_of_two_and_read_from_its_growing_overview_exactly(backing):
    """A series read while it grows: from its points, then from the overview built so far and the points after it.
    Every read is the answer of bucketing every point by powers of two, computed here independently."""
    experiment_id = backing.create_experiment({"name": "growing", "dataset": SAMPLE})
    run_id = run_with(backing, experiment_id, [], status="running")
    logged = long_series(run_id, "loss", 30_000, seed=3).with_columns(step=pl.col("step") * 3 + 1)
    bucket_counts = (25, 50, 125, 250, 1_024, 2_000)  # 2,000 is finer than the overview's 1,024: read from the points

    for batch in logged.iter_slices(7_000):
        backing.log_metrics(batch)
        so_far = logged.filter(pl.col("step") <= batch["step"].max())
        for b in bucket_counts:  # before this batch is in the overview: the older part from it, this batch from points
            assert as_set(backing.get_metric_series([run_id], max_points=2 * b)) == power_of_two_read(so_far, b), b
        backing.build_overviews()
        built = growing_rows(backing, run_id)
        assert built["last"].to_list() == [batch["step"].max()]  # the overview reaches the last step logged
        assert built["points"].to_list()[0] <= 2 * overviews.FINE
        for b in bucket_counts:
            assert as_set(backing.get_metric_series([run_id], max_points=2 * b)) == power_of_two_read(so_far, b), b


def test_a_running_runs_read_takes_the_grown_part_from_the_overview(backing):
    experiment_id = backing.create_experiment({"name": "growing", "dataset": SAMPLE})
    run_id = run_with(backing, experiment_id, [("loss", 10_000, 1)], status="running")
    backing.build_overviews()
    backing.log_metrics(long_series(run_id, "loss", 10_000, seed=5).with_columns(step=pl.col("step") + 10_000))
    # Behind the store's back, every point the overview holds moves up by 1,000: only a read of the points sees it.
    backing._write(lambda con: con.execute("UPDATE metrics SET value = value + 1000 WHERE run_id = ? AND step < 10000", [run_id]))

    read = backing.get_metric_series([run_id], max_points=500)

    assert read.filter(pl.col("step") < 10_000)["value"].max() < 1000  # the first 10,000 steps from the overview
    assert read.filter(pl.col("step") >= 10_000).height > 100  # the rest from the points


def test_when_a_run_ends_its_growing_overview_gives_way_to_the_ended_runs_levels(backing):
    experiment_id = backing.create_experiment({"name": "growing", "dataset": SAMPLE})
    run_id = run_with(backing, experiment_id, [("loss", 6_000, 1)], status="running")
    backing.build_overviews()
    assert not growing_rows(backing, run_id).is_empty()

    backing.complete_run(run_id)
    from_points = backing.get_metric_series([run_id], max_points=100)  # bucketed over the last step again
    backing.build_overviews()

    assert growing_rows(backing, run_id).is_empty()
    assert set(overview_rows(backing)["level"]) == set(overviews.LEVELS)
    assert backing.get_metric_series([run_id], max_points=100).equals(from_points)
    assert from_points.height == 100  # 50 buckets spread over the last step, each its lowest and highest point


def test_a_rewritten_step_drops_a_growing_overview(backing):
    experiment_id = backing.create_experiment({"name": "growing", "dataset": SAMPLE})
    run_id = run_with(backing, experiment_id, [("loss", 6_000, 1)], status="running")
    backing.build_overviews()

    backing.log_metrics(pl.DataFrame({"run_id": [run_id], "key": ["loss"], "step": [100], "value": [-500.0], "wall_time": [START]}))

    assert growing_rows(backing, run_id).is_empty()
    assert backing.get_metric_series([run_id], max_points=100)["value"].min() == -500.0
