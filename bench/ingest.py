"""Ingest benchmark: metric points through the public MetricWriter into a fresh store.

    python -m bench.ingest                      # 10,000,000 points, columnar, plus the per-step API
    python -m bench.ingest --points 1000000     # a quick run
    python -m bench.ingest --processes 4        # also: 4 writer processes sharing one store

Each benchmark gets a fresh store reached as production reaches it (a `RemoteStore`, what
`open_store()` returns), so its first call starts the store server and every flush is one
request to it. Setup (the experiment and its runs) goes through the store API and is not timed;
the clock runs from the first logged point until the writer has closed, i.e. until every point
is journaled and stored. Each flush (one `log_metrics` request) is timed on its own as well.
The server is stopped (closing the file, which checkpoints the WAL) before the size on disk is read.
"""

import argparse
import inspect
import multiprocessing
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl

from bench.seed import SERVER_IDLE_EXIT, counting_round_trips, require_server, stop_server
from core import remote
from core.remote import RemoteStore
from core.store import TrackingStore
from core.writer import MetricWriter

KEYS = ("loss", "learning_rate", "eval_loss", "accuracy")
RUNS = 200
POINTS = 10_000_000
FLUSH_POINTS = 500_000
DEFAULT_FLUSH_POINTS = inspect.signature(MetricWriter).parameters["flush_points"].default  # what callers get by default
SMALL_FLUSH_POINTS = 100_000  # the second size when the default is the benchmark's own: two sizes split a flush's cost
PER_STEP_POINTS = 200_000
PER_STEP_RUNS = 10
TARGET_POINTS_PER_SECOND = 1_000_000


@dataclass
class IngestResult:
    label: str
    points: int
    seconds: float
    flush_points: int
    processes: int = 1
    store_bytes: int = 0
    errors: list[str] = field(default_factory=list)
    flush_ms: list[float] = field(default_factory=list)
    target: float | None = None
    requests: int = 0  # store requests sent while logging, all processes together

    @property
    def requests_per_flush(self) -> float:
        return self.requests / max(1, len(self.flush_ms))

    @property
    def points_per_second(self) -> float:
        return self.points / self.seconds

    @property
    def flush_median_ms(self) -> float:
        return statistics.median(self.flush_ms)

    def line(self) -> str:
        return (
            f"{self.label}: {self.points:,} points in {self.seconds:.2f} s = {self.points_per_second:,.0f} points/s "
            f"(flush_points={self.flush_points:,}, {len(self.flush_ms)} flushes of median {self.flush_median_ms:.0f} ms, "
            f"{self.requests_per_flush:.0f} store requests per flush, processes={self.processes}, "
            f"store {self.store_bytes / 2**20:.0f} MiB, errors: {len(self.errors)})"
        )


class TimedStore(RemoteStore):
    """The production client, noting how long each flush (one log_metrics request, answered once committed) takes."""

    def __init__(self, path: Path | str, **options):
        super().__init__(path, **options)
        self.flush_ms: list[float] = []

    def log_metrics(self, points: pl.DataFrame) -> int:
        start = time.perf_counter()
        try:
            return super().log_metrics(points)
        finally:
            self.flush_ms.append((time.perf_counter() - start) * 1000)


def make_store(folder: Path, runs: int) -> tuple[TimedStore, list[int]]:
    """A fresh store holding one experiment and its runs, created through the store API.

    Its first call starts the store server, outside any clock; stop it with stop_server(store.path).
    """
    store = TimedStore(folder / "store.duckdb", idle_exit=SERVER_IDLE_EXIT)
    experiment_id = store.create_experiment({"name": "ingest benchmark", "dataset": "data/sample/sentiment.csv"})
    return store, [store.create_run(experiment_id, {"lora_rank": 8}) for _ in range(runs)]


def steps_per_series(points: int, runs: int) -> int:
    steps = points // (runs * len(KEYS))
    if steps < 1:
        raise SystemExit(f"--points must be at least {runs * len(KEYS)} ({runs} runs x {len(KEYS)} keys)")
    return steps


def curves(steps: np.ndarray) -> dict[str, np.ndarray]:
    """Training-shaped values, so the store compresses them as it would real metrics."""
    progress = steps / max(1, steps.size)
    return {
        "loss": 2.0 * np.exp(-5 * progress) + 0.1,
        "learning_rate": 2e-4 * (1 - progress) + 1e-6,
        "eval_loss": 2.2 * np.exp(-4 * progress) + 0.15,
        "accuracy": 0.5 + 0.4 * (1 - np.exp(-6 * progress)),
    }


def log_columnar(store: TrackingStore, run_ids: list[int], steps: int, flush_points: int) -> int:
    """Every run's series through MetricWriter.log_series; returns the points the writer stored."""
    step_numbers = np.arange(steps, dtype=np.int64)
    values = curves(step_numbers)
    with MetricWriter(store, flush_points=flush_points) as writer:
        for run_id in run_ids:
            for key in KEYS:
                writer.log_series(run_id, key, step_numbers, values[key] + run_id * 1e-9)
    return writer.points_written


def log_per_step(store: TrackingStore, run_ids: list[int], steps: int, flush_points: int) -> int:
    """The training-loop API: one MetricWriter.log call with a dict of 4 keys per run and step."""
    values = {key: series.tolist() for key, series in curves(np.arange(steps)).items()}
    with MetricWriter(store, flush_points=flush_points) as writer:
        for step in range(steps):
            for run_id in run_ids:
                writer.log(run_id, step, {key: values[key][step] for key in KEYS})
    return writer.points_written


def store_bytes(store: RemoteStore) -> int:
    """The database file and its WAL (read after the server closed the file, so the WAL is checkpointed)."""
    files = (store.path, store.path.with_name(store.path.name + ".wal"))
    return sum(path.stat().st_size for path in files if path.exists())


def missing_points(store: TrackingStore, run_ids: list[int], steps: int) -> list[str]:
    """Check through the API that every series is complete; returns what is wrong, if anything."""
    problems = []
    for run in store.get_runs(run_ids):
        for key in KEYS:
            summary = run.metrics.get(key)
            if summary is None or summary.count != steps or summary.last_step != steps - 1:
                problems.append(f"run {run.id} {key}: {summary}")
    for run_id in (run_ids[0], run_ids[-1]):
        height = store.get_run_metrics(run_id).series.height
        if height != steps * len(KEYS):
            problems.append(f"run {run_id}: {height} points read back, expected {steps * len(KEYS)}")
    return problems


def _timed(folder: Path, runs: int, log, steps: int, flush_points: int, label: str) -> IngestResult:
    store, run_ids = make_store(folder, runs)
    try:
        require_server(store.path, label)
        with counting_round_trips() as counted:  # a counter bumped per request: nothing beside a flush's milliseconds
            start = time.perf_counter()
            written = log(store, run_ids, steps, flush_points)
            seconds = time.perf_counter() - start
        errors = missing_points(store, run_ids, steps)
    finally:
        stop_server(store.path)
    if written != steps * runs * len(KEYS):
        errors.append(f"writer reports {written:,} points written")
    result = IngestResult(label, written, seconds, flush_points, 1, store_bytes(store), errors, store.flush_ms)
    result.requests = counted.operations
    return result


def bench_columnar(folder: Path, points: int = POINTS, flush_points: int = FLUSH_POINTS) -> IngestResult:
    steps = steps_per_series(points, RUNS)
    result = _timed(folder, RUNS, log_columnar, steps, flush_points, "log_series")
    result.target = TARGET_POINTS_PER_SECOND
    return result


def bench_per_step(folder: Path, points: int = PER_STEP_POINTS, flush_points: int = FLUSH_POINTS) -> IngestResult:
    steps = steps_per_series(points, PER_STEP_RUNS)
    return _timed(folder, PER_STEP_RUNS, log_per_step, steps, flush_points, "log (dict per step)")


# -- several writer processes on one store file ---------------------------------------------------
class WriterOutcome(NamedTuple):
    start: float
    end: float
    written: int
    error: str | None
    flush_ms: list[float]
    requests: int


def _writer_process(path: str, run_ids: list[int], steps: int, flush_points: int, ready, results) -> None:
    """A writer as a training script reaches the store (`open_store()` gives the same client): it uses the server
    that runs; starting one here would be reported as an error."""
    store = TimedStore(path)
    store.get_runs(run_ids)  # a first call, so imports and the first connection happen before the clock starts
    error = None if remote.running(Path(path).resolve()) else "writer process found no store server running"
    ready.wait()
    start = time.time()
    with counting_round_trips() as counted:
        try:
            written = log_columnar(store, run_ids, steps, flush_points)
        except Exception as exc:  # noqa: BLE001 - reported, not raised: the parent counts every process's errors
            written, error = 0, f"{type(exc).__name__}: {exc}"
    results.put(WriterOutcome(start, time.time(), written, error, store.flush_ms, counted.operations))


def bench_processes(folder: Path, processes: int, points: int = POINTS, flush_points: int = FLUSH_POINTS) -> IngestResult:
    """Writers start together behind a barrier; the rate is all points over first start to last finish.

    The parent's store starts the server; each writer process makes its own `TimedStore(path)` client,
    which finds it, so all their flushes go through the one server (its committer thread takes the writes
    in turn, committing together those that queued up meanwhile).
    """
    steps = steps_per_series(points, RUNS)
    store, run_ids = make_store(folder, RUNS)
    try:
        context = multiprocessing.get_context("spawn")
        ready, results = context.Barrier(processes), context.Queue()
        shares = [run_ids[index::processes] for index in range(processes)]
        workers = [
            context.Process(target=_writer_process, args=(str(store.path), share, steps, flush_points, ready, results))
            for share in shares
        ]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=600) for _ in workers]
        for worker in workers:
            worker.join()
        errors = [outcome.error for outcome in outcomes if outcome.error]
        errors += [f"writer process exited with {worker.exitcode}" for worker in workers if worker.exitcode]
        errors += missing_points(store, run_ids, steps)
    finally:
        stop_server(store.path)
    seconds = max(outcome.end for outcome in outcomes) - min(outcome.start for outcome in outcomes)
    written = sum(outcome.written for outcome in outcomes)
    flush_ms = [ms for outcome in outcomes for ms in outcome.flush_ms]
    label = f"log_series, {processes} processes"
    result = IngestResult(label, written, seconds, flush_points, processes, store_bytes(store), errors, flush_ms)
    result.requests = sum(outcome.requests for outcome in outcomes)
    return result


def second_flush_points(flush_points: int) -> int:
    """The writer's default, unless that is the size already measured."""
    return DEFAULT_FLUSH_POINTS if DEFAULT_FLUSH_POINTS != flush_points else SMALL_FLUSH_POINTS


def run(folder: Path, points: int, flush_points: int, per_step_points: int, processes: int) -> list[IngestResult]:
    """Each benchmark gets its own fresh store under folder."""
    plans = [
        ("columnar", lambda where: bench_columnar(where, points, flush_points)),
        ("columnar-second", lambda where: bench_columnar(where, points, second_flush_points(flush_points))),
        ("per-step", lambda where: bench_per_step(where, per_step_points, flush_points)),
    ]
    if processes > 1:
        plans.append(("processes", lambda where: bench_processes(where, processes, points, flush_points)))
    results = []
    for name, plan in plans:
        (folder / name).mkdir()
        results.append(plan(folder / name))
        print(results[-1].line(), flush=True)
    return results


def arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--points", type=int, default=POINTS, help="points for the columnar runs (default 10,000,000)")
    parser.add_argument("--flush-points", type=int, default=FLUSH_POINTS, help="MetricWriter flush_points (default 500,000)")
    parser.add_argument("--per-step-points", type=int, default=PER_STEP_POINTS, help="points for the log() dict API")
    parser.add_argument("--processes", type=int, default=0, help="also run N writer processes on one store")
    return parser


def main() -> None:
    options = arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0])).parse_args()
    with tempfile.TemporaryDirectory(prefix="tunedeck-ingest-") as folder:
        results = run(Path(folder), options.points, options.flush_points, options.per_step_points, options.processes)
    if any(result.errors for result in results):
        raise SystemExit("\n".join(error for result in results for error in result.errors))


if __name__ == "__main__":
    main()
