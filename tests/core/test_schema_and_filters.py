"""Migrations, the data directory setting, filter SQL and metric directions."""

import duckdb
import pytest

from core import open_store, remote
from core.directions import Direction, direction_for
from core.duckdb_store import DuckDBStore
from core.errors import ValidationError
from core.filters import experiment_order, experiment_where
from core.migrations import MIGRATIONS, migrate
from core.writer import MetricWriter


def test_migrations_are_versioned_and_idempotent(tmp_path):
    con = duckdb.connect(str(tmp_path / "fresh.duckdb"))

    first = migrate(con)
    second = migrate(con)

    assert first == [version for version, _, _ in MIGRATIONS]
    assert second == []
    recorded = [row[0] for row in con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()]
    assert recorded == first
    con.close()


def ties_as_the_old_rule_kept_them(store) -> list[int]:
    """Runs tied at the best eval_loss, 0.3 (a failed one first, with the lowest ID), as a store the old rule kept:
    the caller then stores the later tied run as best, the one that completed first. Returns the completed runs."""
    experiment = store.create_experiment({"name": "ties", "dataset": "d.csv"})
    failed, *runs = [store.create_run(experiment, {}) for _ in range(4)]
    with MetricWriter(store) as writer:
        for run_id, (loss, accuracy) in zip([failed, *runs], [(0.3, 0.1), (0.3, 0.7), (0.5, 0.9), (0.3, 0.8)], strict=True):
            writer.log_series(run_id, "eval_loss", [1], [loss])
            writer.log_series(run_id, "eval_accuracy", [1], [accuracy])
    for run_id in [failed, *runs]:
        store.mark_running(run_id, worker="test")
    store.fail_run(failed, "boom")  # it ties too, with the lowest ID: a failed run is never best
    for run_id in reversed(runs):
        store.complete_run(run_id)
    store.close()
    return runs


def test_a_store_made_when_ties_went_to_the_first_run_to_complete_gives_them_to_the_lower_run_id(tmp_path):
    """Migration 10: an experiment's stored best is moved to the lower run ID of a tie, as the aggregates and the
    compare page pick it; other bests are left as they are."""
    runs = ties_as_the_old_rule_kept_them(DuckDBStore(tmp_path / "tunedeck.duckdb"))
    con = duckdb.connect(str(tmp_path / "tunedeck.duckdb"))
    con.execute("UPDATE best_metrics SET run_id = ? WHERE key = 'eval_loss'", [runs[2]])
    con.execute("DELETE FROM schema_migrations WHERE version = 10")

    migrate(con)

    assert dict(con.execute("SELECT key, run_id FROM best_metrics").fetchall()) == {"eval_loss": runs[0], "eval_accuracy": runs[1]}
    con.close()


def test_a_postgresql_store_made_then_gives_ties_to_the_lower_run_id_too(postgres_databases, tmp_path, clock):
    import psycopg

    from core.pg_migrations import migrate as migrate_postgresql
    from core.postgres_store import PostgresStore

    url = postgres_databases.fresh()
    runs = ties_as_the_old_rule_kept_them(PostgresStore(url, tmp_path, clock=clock, timeout=30))
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("UPDATE best_metrics SET run_id = %s WHERE key = 'eval_loss'", [runs[2]])
        con.execute("DELETE FROM schema_migrations WHERE version = 7")

        migrate_postgresql(con)

        assert dict(con.execute("SELECT key, run_id FROM best_metrics").fetchall()) == {"eval_loss": runs[0], "eval_accuracy": runs[1]}


def test_store_lives_in_tunedeck_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEDECK_DATA_DIR", str(tmp_path / "elsewhere"))

    store = open_store()
    try:
        store.create_experiment({"name": "x", "dataset": "d.csv"})

        assert store.path == tmp_path / "elsewhere" / "tunedeck.duckdb"
        assert store.path.exists()
    finally:  # a server left idling would serve the next test run's folder of the same name (pytest reuses numbers)
        remote.stop(store.path)


def test_filters_bind_values_as_parameters():
    sql, params = experiment_where(status=["failed", "running"], name_contains="'; DROP TABLE x; --", include_deleted=False)

    assert sql == "WHERE e.deleted_at IS NULL AND list_contains(?, e.status) AND contains(lower(e.name), lower(?))"
    assert params == [["failed", "running"], "'; DROP TABLE x; --"]


def test_including_deleted_experiments_drops_the_filter():
    assert experiment_where(status=None, name_contains="", include_deleted=True) == ("", [])


@pytest.mark.parametrize("sort", ["name; DROP TABLE runs", "e.name", ["name"], None, "NAME"])
def test_sort_keys_come_from_an_allow_list(sort):
    assert experiment_order("name", descending=False) == "ORDER BY lower(e.name) ASC, e.id ASC"
    with pytest.raises(ValidationError, match="cannot sort experiments by .*; use one of "):
        experiment_order(sort, descending=True)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("loss", Direction.MIN),
        ("eval_loss", Direction.MIN),
        ("train/loss", Direction.MIN),
        ("perplexity", Direction.MIN),
        ("word_error_rate", Direction.MIN),
        ("eval_accuracy", Direction.MAX),
        ("f1", Direction.MAX),
        ("bleu", Direction.MAX),
        ("rougeL", Direction.MAX),
        ("learning_rate", None),
        ("grad_norm", None),
        ("embedding_norm", None),
    ],
)
def test_metric_direction_follows_the_name(key, expected):
    assert direction_for(key) == expected


def test_metric_direction_override_wins():
    assert direction_for("eval_loss", {"eval_loss": Direction.MAX}) is Direction.MAX


def test_a_sound_store_passes_the_integrity_check(store, make_experiment, make_run):
    experiment_id = make_experiment()
    make_run(experiment_id, metrics={"loss": [3.0, 2.0, 1.0], "eval_loss": [0.5]})
    make_run(experiment_id, status="failed", metrics={"loss": [9.0]})

    assert store.verify_integrity() == []


def test_the_integrity_check_finds_summaries_that_disagree_with_points(store, backing, make_experiment, make_run):
    run_id = make_run(make_experiment(), metrics={"loss": [3.0, 2.0]})
    backing.db.write(
        lambda con: (con.execute("DELETE FROM metrics WHERE step = 2"), con.execute("UPDATE experiments SET status = 'failed'"))
    )

    problems = store.verify_integrity()

    assert f"metric summary of run {run_id} key 'loss' disagrees with its points" in problems
    assert any("is failed but its runs make it completed" in problem for problem in problems)
