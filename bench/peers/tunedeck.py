"""TuneDeck as production runs it, through its public writer and query functions.

`TuneDeck(served=True)` is what `open_store()` gives the app, the workers and training scripts:
the first call starts the store server (outside the clock, during setup) and every call after
that goes through it. `TuneDeck(served=False)` is the design before the server: every call opens
the DuckDB file and closes it again (`TUNEDECK_STORE_SERVER=0`); it runs the small workload only,
to show in the same run what the server changes.
"""

import time
from pathlib import Path

import polars as pl

from bench.ingest import TimedStore
from bench.peers.workload import ACCURACY_THRESHOLD, KEYS, Ingested, curves, folder_bytes
from core import remote
from core.duckdb_store import DuckDBStore
from core.writer import MetricWriter

SERVER_IDLE_EXIT = 60.0
FILTER = f"accuracy > {ACCURACY_THRESHOLD}"


class TuneDeck:
    def __init__(self, served: bool):
        self.served = served
        self.__name__ = "TuneDeck" if served else "TuneDeck before the server"

    def store(self, folder: Path, timed: bool = False) -> DuckDBStore:
        kind = TimedStore if timed else DuckDBStore
        return kind(Path(folder) / "tunedeck.duckdb", server_idle_exit=SERVER_IDLE_EXIT if self.served else None)

    def ingest(self, folder: Path, runs: int, steps: int) -> Ingested:
        """Setup (experiment and runs) is not timed; the clock stops when the writer has stored every point."""
        store, experiment_id, run_ids = self.prepare(folder, runs)
        series = [curves(index, steps) for index in range(runs)]
        start = time.perf_counter()
        written = log(store, run_ids, series)
        return Ingested(time.perf_counter() - start, written, experiment_id, run_ids, store.flush_ms)

    def prepare(self, folder: Path, runs: int) -> tuple[TimedStore, int, list[int]]:
        store = self.store(folder, timed=True)
        experiment_id = store.create_experiment({"name": "peers", "dataset": "data/sample/sentiment.csv"})
        return store, experiment_id, [store.create_run(experiment_id, {"lora_rank": 8}) for _ in range(runs)]

    def list_latest(self, folder: Path, ingested: Ingested) -> int:
        """The public frame API: one row per run, one column per metric's last value."""
        table = self.store(folder).runs_table(ingested.experiment)
        assert table["loss"].null_count() == 0 and set(KEYS) <= set(table.columns)
        return table.height

    def list_runs(self, folder: Path, ingested: Ingested) -> int:
        """The public model API: a Pydantic Run per run, each with its metric summaries."""
        runs = self.store(folder).list_runs(ingested.experiment)
        assert all(run.metrics["loss"].last is not None for run in runs)
        return len(runs)

    def filter_order(self, folder: Path, ingested: Ingested) -> list[int]:
        table = self.store(folder).runs_table(ingested.experiment, where=[FILTER], order_by="eval_loss")
        return table["id"].to_list()

    def history(self, folder: Path, ingested: Ingested, run_ids: list) -> int:
        series: pl.DataFrame = self.store(folder).get_metric_series(run_ids, ["loss"], max_points=None)
        return series.height

    def size_on_disk(self, folder: Path) -> int:
        return folder_bytes(folder)

    def done(self, folder: Path) -> None:
        """Stop the folder's store server, so its file is closed before the folder goes."""
        remote.stop(self.store(folder).path.resolve())


def log(store: DuckDBStore, run_ids: list[int], series: list[dict]) -> int:
    """Every series through MetricWriter.log_series; returns the points the writer stored."""
    steps = range(len(series[0][KEYS[0]]))
    with MetricWriter(store) as writer:
        for run_id, values in zip(run_ids, series, strict=True):
            for key in KEYS:
                writer.log_series(run_id, key, steps, values[key])
    return writer.points_written
