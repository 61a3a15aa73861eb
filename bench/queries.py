"""Query benchmark: what the dashboard asks of a big store, timed through the public store API.

    python -m bench.queries                     # 10,000 experiments / 200,000 runs / 10,400,000 points
    python -m bench.queries --experiments 1000  # a quick run, a tenth of the size

The store is bulk-built by bench.seed (not timed), which closes the file before the store server
starts. The queries then go through the store server, as in production: a `RemoteStore` (what
`open_store()` returns) whose first call, in the untimed setup, starts the server. The clock covers
each call of the public store API, from the request to the decoded answer; each primitive it uses
is one request to the server, and the requests per call are counted on one more, untimed call.
"""

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.seed import RoundTrips, counting_round_trips, require_server, seed_tables, served, stop_server
from bench.timing import Timing, measure
from core.status import ExperimentStatus
from core.store import TrackingStore

EXPERIMENTS = 10_000
RUNS_PER_EXPERIMENT = 20
POINTS_PER_RUN = 52  # seed logs whole steps of its 4 keys: 52 gives 13 steps, so the store holds >= 10 million points
COMPARED_RUNS = 10
LIST_TARGET_MS = 100
COMPARE_TARGET_MS = 200


@dataclass(frozen=True)
class Query:
    name: str
    operation: Callable[[], object]
    target_ms: float | None = None


@dataclass(frozen=True)
class QueryResult:
    name: str
    timing: Timing
    asked: RoundTrips  # what one call asked of the store server (nothing, for work that does not use the store)
    target_ms: float | None

    def line(self) -> str:
        target = f"target < {self.target_ms:.0f} ms" if self.target_ms else "no target"
        asked = f"{self.asked.operations} store requests per call"
        return f"{self.name}: median {self.timing.median_ms:.1f} ms, p90 {self.timing.p90_ms:.1f} ms ({asked}; {target})"


@dataclass(frozen=True)
class QuerySuite:
    experiments: int
    runs: int
    points: int
    store_bytes: int
    seed_seconds: float
    results: list[QueryResult]


def seed(folder: Path, experiments: int) -> tuple[Path, tuple[int, int, int], float]:
    """The store's path, the rows seeded (experiments, runs, points) and the seconds seeding took."""
    path = folder / "store.duckdb"
    start = time.perf_counter()
    counts = seed_tables(path, experiments, RUNS_PER_EXPERIMENT, POINTS_PER_RUN)
    return path, counts, time.perf_counter() - start


def queries(store: TrackingStore) -> list[Query]:
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
    """One more, untimed call, counting its requests to the store server."""
    with counting_round_trips() as counted:
        operation()
    return counted


def run(folder: Path, experiments: int = EXPERIMENTS, repeat: int = 15, warmup: int = 2) -> QuerySuite:
    path, seeded_counts, seed_seconds = seed(folder, experiments)
    store = served(path)
    results = []
    try:
        plans = queries(store)  # its first call starts the store server, off the clock
        require_server(store.path, "bench.queries")
        for query in plans:
            timing = measure(query.operation, repeat, warmup)
            results.append(QueryResult(query.name, timing, asked_per_call(query.operation), query.target_ms))
            print(results[-1].line(), flush=True)
    finally:
        stop_server(store.path)
    size = sum(file.stat().st_size for file in (path, path.with_name(path.name + ".wal")) if file.exists())
    return QuerySuite(*seeded_counts, size, seed_seconds, results)


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
