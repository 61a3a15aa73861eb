"""The store server answers a repeated read from its cache until a write changes it, and never serves a stale answer."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import polars as pl
from polars.testing import assert_frame_equal

from core import database
from core.duckdb_store import DuckDBStore
from core.read_cache import DEFAULT_MB, ReadCache
from core.remote import RemoteStore, address_for
from core.store import CURVE_READS, READS, operations
from core.store_server import StoreServer, announce, claim


def test_an_answer_is_served_again_until_the_store_moves_to_a_new_generation():
    cache = ReadCache()
    cache.put("list runs of 1", 7, b"[1, 2]", 6)

    assert cache.get("list runs of 1", 7) == b"[1, 2]"
    assert cache.get("list runs of 1", 8) is None, "a commit since: read again"
    assert cache.get("list runs of 1", 7) is None, "and the old answer is gone for good"


def test_an_answer_read_while_a_write_committed_is_not_kept():
    cache = ReadCache()
    cache.get("anything", 8)  # another request has already seen generation 8

    cache.put("runs", 7, b"read before the commit", 22)

    assert cache.get("runs", 8) is None


def test_the_least_recently_used_answers_make_room_for_new_ones():
    cache = ReadCache(max_bytes=40)
    cache.put("a", 1, "A", 10)
    cache.put("b", 1, "B", 10)
    cache.put("c", 1, "C", 10)
    cache.get("a", 1)
    cache.put("d", 1, "D", 10)
    cache.put("e", 1, "E", 10)

    assert [cache.get(key, 1) for key in "abcde"] == ["A", None, "C", "D", "E"], "b was the least recently used"
    cache.put("huge", 1, "X", 11)  # over a quarter of the cache: never kept
    assert cache.get("huge", 1) is None


@contextmanager
def served(tmp_path) -> Iterator[tuple[RemoteStore, ReadCache, DuckDBStore]]:
    held = DuckDBStore(tmp_path / "tunedeck.duckdb")
    address = address_for(held.path.resolve())
    fd = claim(address, timeout=5)
    server = StoreServer(held, address, DEFAULT_MB * 2**20)
    announce(fd)
    try:
        yield RemoteStore(held.path, timeout=30), server.cache, held
    finally:
        server.shutdown()
        os.close(fd)
        held.close()


def points(run_id: int, steps: list[int], value: float | list[float]) -> pl.DataFrame:
    return pl.DataFrame(
        {"run_id": run_id, "key": "loss", "step": steps, "value": value, "wall_time": datetime(2026, 1, 1)},
        schema_overrides={"step": pl.Int64, "value": pl.Float64},
    )


def test_a_served_store_reads_from_the_cache_and_sees_every_write_at_once(tmp_path):
    with served(tmp_path) as (store, cache, _):
        experiment_id = store.create_experiment({"name": "first name", "dataset": "data/sample/sentiment.csv"})
        run_id = store.create_run(experiment_id, {"learning_rate": 0.01})

        for _ in range(3):
            assert store.get_experiment(experiment_id).name == "first name"
            assert store.get_metric_series([run_id], ["loss"]).is_empty()
        assert cache.hits == 4, "the second and third of each read came from the cache"

        store.rename_experiment(experiment_id, "second name")
        store.log_metrics(points(run_id, [1], 0.5))

        assert store.get_experiment(experiment_id).name == "second name"
        assert store.get_metric_series([run_id], ["loss"])["value"].to_list() == [0.5]


def test_a_finished_runs_curve_stays_cached_while_other_runs_train_and_not_once_its_own_points_change(tmp_path):
    with served(tmp_path) as (store, cache, _):
        experiment_id = store.create_experiment({"name": "sweep", "dataset": "data/sample/sentiment.csv"})
        finished, training = (store.create_run(experiment_id, {"learning_rate": lr}) for lr in (0.01, 0.02))
        store.log_metrics(points(finished, [1, 2], 0.5))
        store.get_metric_series([finished])
        store.get_experiment(experiment_id)

        store.mark_running(training, "w:1")
        store.log_metrics(points(training, [1, 2, 3], 0.9))
        store.heartbeat(training)
        hits = cache.hits
        assert store.get_metric_series([finished])["value"].to_list() == [0.5, 0.5]
        assert cache.hits == hits + 1, "other runs' points and heartbeats left the finished run's curve served"
        assert store.get_experiment(experiment_id).status == "running"
        assert cache.hits == hits + 1, "a store-wide answer is read again after any commit"
        assert store.get_metric_series([training, finished])["run_id"].to_list() == [finished] * 2 + [training] * 3
        assert cache.hits == hits + 2, "the finished run's curve from memory, the training run's read"

        store.log_metrics(points(finished, [3], 0.25))  # a late point of the finished run (a resumed run, an import)
        assert store.get_metric_series([finished])["value"].to_list() == [0.5, 0.5, 0.25]
        assert store.get_metric_series([finished, training]).height == 6
        assert cache.hits == hits + 4, "both curves as last read: nothing wrote to either since"


def test_a_runs_curve_read_while_it_ran_is_read_again_once_it_ends(tmp_path):
    """A running run's long curve is bucketed by powers of two, an ended run's over its last step (core.overviews):
    an end changes the answer though no point changes."""
    with served(tmp_path) as (store, cache, held):
        run_id = store.begin_run("live", {}, worker="w:1")
        store.log_metrics(points(run_id, list(range(3000)), [((s * 7919) % 1000) / 1000 for s in range(3000)]))
        assert_frame_equal(store.get_metric_series([run_id], max_points=100), held.get_metric_series([run_id], max_points=100))

        store.end_run(run_id, "completed")

        ended = store.get_metric_series([run_id], max_points=100)
        assert_frame_equal(ended, held.get_metric_series([run_id], max_points=100))
        assert ended.height == 100  # 50 buckets over the last step, each its lowest and highest point


def test_curves_put_together_run_by_run_are_the_stores_own_answer(tmp_path):
    """Short and long runs (bucketed), runs with no points, unknown keys: from memory or not, the same frame."""
    with served(tmp_path) as (store, cache, held):
        experiment_id = store.create_experiment({"name": "mixed", "dataset": "data/sample/sentiment.csv"})
        long, short, empty = (store.create_run(experiment_id, {"learning_rate": lr}) for lr in (0.1, 0.2, 0.3))
        store.log_metrics(points(long, list(range(5000)), [((s * 7919) % 1000) / 1000 for s in range(5000)]))
        store.log_metrics(pl.concat([points(short, [1, 2], 0.5), points(short, [1], 0.7).with_columns(key=pl.lit("eval_loss"))]))
        for run_ids, keys, max_points in [([long, short, empty], None, 100), ([short], ["eval_loss"], 100), ([empty, long], ["loss"], 2)]:
            store.get_metric_series([long], keys, max_points)  # one run from memory, the others read
            asked = {"keys": keys, "max_points": max_points}
            assert_frame_equal(store.get_metric_series(run_ids, **asked), held.get_metric_series(run_ids, **asked))
            assert_frame_equal(store.get_metric_series(run_ids, **asked), held.get_metric_series(run_ids, **asked))
        assert cache.hits > 0


def test_past_so_many_runs_every_run_counts_as_changed(tmp_path, monkeypatch):
    monkeypatch.setattr(database, "MAX_POINT_VERSIONS", 2)
    store = DuckDBStore(tmp_path / "tunedeck.duckdb")
    try:
        experiment_id = store.create_experiment({"name": "many", "dataset": "data/sample/sentiment.csv"})
        first, second, third = (store.create_run(experiment_id, {"learning_rate": lr}) for lr in (0.1, 0.2, 0.3))
        store.log_metrics(pl.concat([points(first, [1], 1.0), points(second, [1], 1.0)]))
        before = store.db.generation
        assert not store.db.points_changed_since([first, second], before)

        store.log_metrics(points(third, [1], 1.0))  # a third run: the map of two is emptied

        assert store.db.points_changed_since([first], before), "forgotten, so counted as changed"
        assert not store.db.points_changed_since([first], store.db.generation)
    finally:
        store.close()


def test_only_operations_of_the_contract_are_answered_from_the_cache():
    assert READS <= operations()
    assert not READS & {"log_metrics", "heartbeat", "start_run", "complete_run", "delete_experiment", "verify_integrity"}
    assert CURVE_READS <= READS
