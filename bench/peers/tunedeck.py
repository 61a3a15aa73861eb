"""TuneDeck as production uses it: every call opens the store file and closes it again.

Ingest and the public queries go through `DuckDBStore` and `MetricWriter`. There is no public
"filter runs by a metric" call, so `filter_order` is one SQL query through the public helpers
`core.db.connect` and `core.sql.frame`; `list_frame` is the same query without the filter, a
frame-returning alternative to `list_runs` (which builds a Pydantic `Run` per run).
"""

import time
from pathlib import Path

import polars as pl

from bench.ingest import TimedStore
from bench.peers.workload import ACCURACY_THRESHOLD, KEYS, Ingested, curves, folder_bytes
from core.db import connect
from core.duckdb_store import DuckDBStore
from core.sql import frame
from core.writer import MetricWriter

_LATEST = """
    WITH latest AS (
        SELECT r.id AS run_id, r.name, r.status, r.created_at,
               {columns}
        FROM runs r LEFT JOIN metric_summaries s ON s.run_id = r.id
        WHERE r.experiment_id = $experiment
        GROUP BY ALL
    )
    SELECT * FROM latest {where} ORDER BY {order}
"""


def _latest_sql(where: str, order: str) -> str:
    """One column per workload key (an allow-list, so the identifiers are safe to place in the SQL)."""
    columns = ",\n".join(f"max(s.last_value) FILTER (WHERE s.key = '{key}') AS \"{key}\"" for key in KEYS)
    return _LATEST.format(columns=columns, where=where, order=order)


LIST_SQL = _latest_sql("", "created_at DESC, run_id DESC")
FILTER_SQL = _latest_sql("WHERE accuracy > $threshold", "eval_loss, run_id")


def _store(folder: Path) -> DuckDBStore:
    return DuckDBStore(Path(folder) / "tunedeck.duckdb")


def ingest(folder: Path, runs: int, steps: int) -> Ingested:
    """Setup (experiment and runs) is not timed; the clock stops when the writer has stored every point."""
    store, experiment_id, run_ids = prepare(folder, runs)
    series = [curves(index, steps) for index in range(runs)]
    start = time.perf_counter()
    written = log(store, run_ids, series)
    return Ingested(time.perf_counter() - start, written, experiment_id, run_ids, store.flush_ms)


def prepare(folder: Path, runs: int) -> tuple[TimedStore, int, list[int]]:
    store = TimedStore(_store(folder).path)
    experiment_id = store.create_experiment({"name": "peers", "dataset": "data/sample/sentiment.csv"})
    return store, experiment_id, [store.create_run(experiment_id, {"lora_rank": 8}) for _ in range(runs)]


def log(store: DuckDBStore, run_ids: list[int], series: list[dict]) -> int:
    """Every series through MetricWriter.log_series; returns the points the writer stored."""
    steps = range(len(series[0][KEYS[0]]))
    with MetricWriter(store) as writer:
        for run_id, values in zip(run_ids, series, strict=True):
            for key in KEYS:
                writer.log_series(run_id, key, steps, values[key])
    return writer.points_written


def list_latest(folder: Path, ingested: Ingested) -> int:
    """The public API: Pydantic Runs, each with its metric summaries."""
    runs = _store(folder).list_runs(ingested.experiment)
    assert all(run.metrics["loss"].last is not None for run in runs)
    return len(runs)


def list_frame(folder: Path, ingested: Ingested) -> int:
    with connect(_store(folder).path, read_only=True) as con:
        return frame(con, LIST_SQL, {"experiment": ingested.experiment}).height


def filter_order(folder: Path, ingested: Ingested) -> list[int]:
    params = {"experiment": ingested.experiment, "threshold": ACCURACY_THRESHOLD}
    with connect(_store(folder).path, read_only=True) as con:
        return frame(con, FILTER_SQL, params)["run_id"].to_list()


def history(folder: Path, ingested: Ingested, run_ids: list) -> int:
    series: pl.DataFrame = _store(folder).get_metric_series(run_ids, ["loss"], max_points=None)
    return series.height


def size_on_disk(folder: Path) -> int:
    return folder_bytes(folder)
