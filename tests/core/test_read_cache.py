"""The store server answers a repeated read from its cache until a write commits, and never serves a stale answer."""

import os
from datetime import datetime

import polars as pl

from core.duckdb_store import DuckDBStore
from core.read_cache import ReadCache
from core.remote import RemoteStore, address_for
from core.store import READS, operations
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


def test_a_served_store_reads_from_the_cache_and_sees_every_write_at_once(tmp_path):
    held = DuckDBStore(tmp_path / "tunedeck.duckdb")
    address = address_for(held.path.resolve())
    fd = claim(address, timeout=5)
    cache = ReadCache()
    server = StoreServer(held, address, cache)
    announce(fd)
    try:
        store = RemoteStore(held.path, timeout=30)
        experiment_id = store.create_experiment({"name": "first name", "dataset": "data/sample/sentiment.csv"})
        run_id = store.create_run(experiment_id, {"learning_rate": 0.01})

        for _ in range(3):
            assert store.get_experiment(experiment_id).name == "first name"
            assert store.get_metric_series([run_id], ["loss"]).is_empty()
        assert cache.hits == 4, "the second and third of each read came from the cache"

        store.rename_experiment(experiment_id, "second name")
        store.log_metrics(pl.DataFrame({"run_id": [run_id], "key": ["loss"], "step": [1], "value": [0.5], "wall_time": [datetime(2026, 1, 1)]}))

        assert store.get_experiment(experiment_id).name == "second name"
        assert store.get_metric_series([run_id], ["loss"])["value"].to_list() == [0.5]
    finally:
        server.shutdown()
        os.close(fd)
        held.close()


def test_only_operations_of_the_contract_are_answered_from_the_cache():
    assert READS <= operations()
    assert not READS & {"log_metrics", "heartbeat", "start_run", "complete_run", "delete_experiment", "verify_integrity"}
