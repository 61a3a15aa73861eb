"""Query benchmark: what the dashboard asks of a big store, timed through the public store API.

    python -m bench.queries                     # 10,000 experiments / 200,000 runs / 10,400,000 points
    python -m bench.queries --experiments 1000  # a quick run, a tenth of the size

The store is bulk-built by bench.seed (not timed). The queries then go through the store server,
as in production: a served store (`server_idle_exit` set, as `open_store()` does) whose first call,
in the untimed setup, starts the server. Each call is one operation on the server (a socket
connection) and a round trip per request; both are counted. Before the server starts, the bare
cost of opening and closing the file read-only is measured as a reference: every store call paid
it before the store server.
"""

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from bench.seed import RoundTrips, build_store, counting_round_trips, require_server, served, stop_server
from bench.timing import Timing, measure
from core.db import connect
from core.duckdb_store import DuckDBStore
from core.sql import first
from core.status import ExperimentStatus

EXPERIMENTS = 10_000
RUNS_PER_EXPERIMENT = 20
POINTS_PER_RUN = 52  # seed logs whole steps of its 4 keys: 52 gives 13 steps, so the store holds >= 10 million points
COMPARED_RUNS = 10
LIST_TARGET_MS = 100
COMPARE_TARGET_MS = 200
OPEN_REFERENCE = "before the store server: open + close the file read-only (duckdb.connect)"


@dataclass(frozen=True)
class Query:
    name: str
    operation: Callable[[], object]
    target_ms: float | None = None


@dataclass(frozen=True)
class QueryResult:
    name: str
    timing: Timing
    asked: RoundTrips | None  # what one call asked of the store server; None: a reference row that uses no server
    target_ms: float | None

    def line(self) -> str:
        target = f"target < {self.target_ms:.0f} ms" if self.target_ms else "no target"
        asked = (
            "reference, no store server"
            if self.asked is None
            else f"{self.asked.operations} store operations, {self.asked.round_trips} round trips per call"
        )
        return f"{self.name}: median {self.timing.median_ms:.1f} ms, p90 {self.timing.p90_ms:.1f} ms ({asked}; {target})"


@dataclass(frozen=True)
class QuerySuite:
    experiments: int
    runs: int
    points: int
    store_bytes: int
    seed_seconds: float
    open_reference: QueryResult  # the bare open + close of the file, measured before the server started
    results: list[QueryResult]  # the served calls

    @property
    def open_ms(self) -> float:
        return self.open_reference.timing.median_ms

    @property
    def rows(self) -> list[QueryResult]:
        return [self.open_reference, *self.results]


def seed(folder: Path, experiments: int) -> tuple[DuckDBStore, float]:
    start = time.perf_counter()
    store = build_store(folder / "store.duckdb", experiments, RUNS_PER_EXPERIMENT, POINTS_PER_RUN)
    return store, time.perf_counter() - start


def counts(store: DuckDBStore) -> tuple[int, int, int]:
    """Row counts, read directly: a check on what was seeded, not a measured operation."""
    with connect(store.path, read_only=True) as con:
        return first(
            con, "SELECT (SELECT count(*) FROM experiments), (SELECT count(*) FROM runs), (SELECT count(*) FROM metrics)"
        )


def open_reference(path: Path, repeat: int, warmup: int) -> QueryResult:
    """What every store call paid before the store server; only measurable while no server holds the file."""
    timing = measure(lambda: duckdb.connect(str(path), read_only=True).close(), repeat, warmup)
    return QueryResult(OPEN_REFERENCE, timing, None, None)


def queries(store: DuckDBStore) -> list[Query]:
    total = store.list_experiments(page=1, page_size=1).total
    middle, later_page = total // 2, max(1, total // 20 // 2)
    run_ids = [run.id for run in store.list_runs(middle)][:COMPARED_RUNS]
    return [
        Query("list_experiments, page 1 of 20", lambda: store.list_experiments(page=1, page_size=20), LIST_TARGET_MS),
        Query(
            "list_experiments, status = completed",
            lambda: store.list_experiments(status=ExperimentStatus.COMPLETED, page=1, page_size=20),
            LIST_TARGET_MS,
        ),
        Query(
            "list_experiments, name contains 'experiment 99'",
            lambda: store.list_experiments(name_contains="experiment 99", page=1, page_size=20),
            LIST_TARGET_MS,
        ),
        Query(
            f"list_experiments, page {later_page} of 20",
            lambda: store.list_experiments(page=later_page, page_size=20),
            LIST_TARGET_MS,
        ),
        Query(f"compare_runs, {len(run_ids)} runs of one experiment", lambda: store.compare_runs(run_ids), COMPARE_TARGET_MS),
        Query(f"get_experiment_detail ({RUNS_PER_EXPERIMENT} runs)", lambda: store.get_experiment_detail(middle)),
        Query(f"get_run_metrics ({POINTS_PER_RUN // 4 * 4} points)", lambda: store.get_run_metrics(run_ids[0])),
    ]


def asked_per_call(operation: Callable[[], object]) -> RoundTrips:
    """One more, untimed call, counting its store server operations and round trips."""
    with counting_round_trips() as counted:
        operation()
    return counted


def run(folder: Path, experiments: int = EXPERIMENTS, repeat: int = 15, warmup: int = 2) -> QuerySuite:
    seeded, seed_seconds = seed(folder, experiments)
    reference = open_reference(seeded.path, repeat, warmup)
    print(reference.line(), flush=True)
    store = served(seeded.path)
    results = []
    try:
        plans = queries(store)  # its first call starts the store server, off the clock
        require_server(store.path, "bench.queries")
        for query in plans:
            timing = measure(query.operation, repeat, warmup)
            results.append(QueryResult(query.name, timing, asked_per_call(query.operation), query.target_ms))
            print(results[-1].line(), flush=True)
        require_server(store.path, "bench.queries")  # still the server: none of the calls fell back to the file
        seeded_counts = counts(store)
    finally:
        stop_server(store.path)
    size = sum(path.stat().st_size for path in (store.path, store.path.with_name(store.path.name + ".wal")) if path.exists())
    return QuerySuite(*seeded_counts, size, seed_seconds, reference, results)


def arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--experiments", type=int, default=EXPERIMENTS, help="experiments to seed, 20 runs each")
    parser.add_argument("--repeat", type=int, default=15, help="timed repetitions per query, after 2 warm-ups")
    return parser


def main() -> None:
    options = arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0])).parse_args()
    with tempfile.TemporaryDirectory(prefix="tunedeck-queries-") as folder:
        suite = run(Path(folder), options.experiments, options.repeat)
    print(
        f"store: {suite.experiments:,} experiments, {suite.runs:,} runs, {suite.points:,} points, seeded in {suite.seed_seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
