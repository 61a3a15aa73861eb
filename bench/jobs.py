"""Jobs benchmark: the sample run end to end, and how many short runs a minute the consumers get through.

    python -m bench.jobs                  # the sample run, then 30 short runs on two consumers and on one
    python -m bench.jobs --short-runs 10  # a quick run

Real worker processes (`python -m jobs.worker --workers 1`, one consumer each) on a fresh data
directory, runs queued with jobs.tasks.start_run. jobs.config builds the queue from
TUNEDECK_DATA_DIR when first imported, so the measuring happens in a spawned child process
that sets the variable before it imports jobs. Times come from the runs' own records
(started_at, ended_at), set against the clock read just before the first start_run.

The store is shared as in production: the child's `open_store()` starts the store server, and
the workers and their training processes send their store operations to it, one request each.
It is stopped at the end.
"""

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bench.seed import require_server, stop_server
from core import open_store
from core.entities import Run, utcnow
from core.status import RunStatus
from core.store import TrackingStore

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = str(ROOT / "data" / "sample" / "sentiment.csv")
SAMPLE_CONFIG = {"epochs": 3, "learning_rate": 0.01}
SHORT_CONFIG = {"max_steps": 20, "eval_interval": 10}
SHORT_RUNS = 30
CONSUMERS = (2, 1)
READY_LINE = "Huey consumer started"
TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class SampleRun:
    status: str
    wall_seconds: float
    queue_seconds: float
    run_seconds: float
    steps: int
    eval_accuracy: float | None

    def line(self) -> str:
        return (
            f"sample run: {self.status} in {self.wall_seconds:.2f} s from start_run (waited {self.queue_seconds:.2f} s "
            f"in the queue, ran {self.run_seconds:.2f} s, {self.steps} steps), eval_accuracy {self.eval_accuracy}"
        )


@dataclass(frozen=True)
class Throughput:
    consumers: int
    runs: int
    completed: int
    seconds: float
    run_seconds: list[float]
    errors: list[str] = field(default_factory=list)

    @property
    def per_minute(self) -> float:
        return self.completed / self.seconds * 60

    @property
    def median_run_seconds(self) -> float:
        return statistics.median(self.run_seconds)

    def line(self) -> str:
        return (
            f"{self.consumers} consumer(s): {self.completed} of {self.runs} short runs completed in {self.seconds:.1f} s "
            f"= {self.per_minute:.1f} jobs/min (median run {self.median_run_seconds:.2f} s; errors: {len(self.errors)})"
        )


@dataclass(frozen=True)
class JobsSuite:
    sample: SampleRun
    throughput: list[Throughput]
    worker_exits: list["WorkerExit"]
    import_seconds: float


# -- worker processes ------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerExit:
    code: int
    last_line: str  # of the worker's output, which says why when the exit was not clean


def start_worker(data_dir: Path, name: str) -> tuple[subprocess.Popen, Path]:
    log = data_dir / f"worker-{name}.log"
    env = {**os.environ, "TUNEDECK_DATA_DIR": str(data_dir), "TUNEDECK_EMBEDDED_WORKER": "0"}
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "jobs.worker", "--workers", "1"], cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, env=env
        )
    return process, log


def stop_worker(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def wait_until_ready(started: list[tuple[subprocess.Popen, Path]], timeout: float = 60) -> None:
    """Each consumer has logged that it started, so its start-up stays off the clock."""
    deadline = time.monotonic() + timeout
    for process, log in started:
        while READY_LINE not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start (exit code {process.poll()}):\n{log.read_text()[-2000:]}")
            time.sleep(0.05)


@contextmanager
def workers(data_dir: Path, count: int, exits: list[WorkerExit]) -> Iterator[None]:
    """count single-consumer workers, stopped on the way out whatever happens; how each ended goes to exits."""
    started = []
    try:
        for _ in range(count):
            started.append(start_worker(data_dir, f"{count}-{len(started) + 1}"))
        wait_until_ready(started)
        yield
    finally:
        for process, log in started:
            code = stop_worker(process)
            exits.append(WorkerExit(code, (log.read_text().strip().splitlines() or [""])[-1]))


# -- measurements ----------------------------------------------------------------------------------
def import_seconds(repeat: int = 3) -> float:
    """What every job pays before training: a new Python process importing jobs.train_process (median)."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import jobs.train_process"], cwd=ROOT, check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def wait_until_terminal(store: TrackingStore, run_ids: list[int], poll: float) -> list[Run]:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        runs = store.get_runs(run_ids)
        if all(run.status.is_terminal for run in runs):
            return runs
        time.sleep(poll)
    raise RuntimeError(f"runs {run_ids} were not finished after {TIMEOUT_SECONDS} s")


def seconds_between(earlier: datetime, later: datetime) -> float:
    return (later - earlier).total_seconds()


def sample_run(store: TrackingStore, start_run, experiment_id: int, data_dir: Path, exits: list[WorkerExit]) -> SampleRun:
    with workers(data_dir, 1, exits):
        enqueued = utcnow()
        (run,) = wait_until_terminal(store, [start_run(store, experiment_id, SAMPLE_CONFIG)], poll=0.1)
    accuracy = run.metrics.get("eval_accuracy")
    return SampleRun(
        run.status.value,
        seconds_between(enqueued, run.ended_at),
        seconds_between(enqueued, run.started_at),
        seconds_between(run.started_at, run.ended_at),
        run.metrics["loss"].last_step if "loss" in run.metrics else 0,
        accuracy.last if accuracy else None,
    )


def throughput(
    store: TrackingStore, start_run, experiment_id: int, data_dir: Path, consumers: int, runs: int, exits: list[WorkerExit]
) -> Throughput:
    """From the first start_run to the last run's end; the queue is filled while the consumers already work."""
    with workers(data_dir, consumers, exits):
        enqueued = utcnow()
        finished = wait_until_terminal(store, [start_run(store, experiment_id, SHORT_CONFIG) for _ in range(runs)], poll=0.5)
    done = [run for run in finished if run.status is RunStatus.COMPLETED]
    errors = [f"run {run.id} {run.status.value}: {run.error}" for run in finished if run.status is not RunStatus.COMPLETED]
    seconds = seconds_between(enqueued, max(run.ended_at for run in finished))
    run_seconds = [seconds_between(run.started_at, run.ended_at) for run in done] or [0.0]
    return Throughput(consumers, runs, len(done), seconds, run_seconds, errors)


def measure_in_child(data_dir: Path, short_runs: int) -> JobsSuite:
    """Runs in the spawned child: the queue must be built on data_dir, so jobs is imported only after setting it.

    The workers inherit this environment, so they use the store server the first open_store() call starts.
    """
    os.environ.update(TUNEDECK_DATA_DIR=str(data_dir), TUNEDECK_EMBEDDED_WORKER="0")
    from jobs.tasks import start_run

    store = open_store()
    try:
        experiment_id = store.create_experiment({"name": "jobs benchmark", "dataset": SAMPLE})
        require_server(store.path, "bench.jobs")
        exits: list[WorkerExit] = []
        sample = sample_run(store, start_run, experiment_id, data_dir, exits)
        print(sample.line(), flush=True)
        results = []
        for consumers in CONSUMERS:
            results.append(throughput(store, start_run, experiment_id, data_dir, consumers, short_runs, exits))
            print(results[-1].line(), flush=True)
        require_server(store.path, "bench.jobs")
    finally:
        stop_server(store.path)  # after the workers (and their training processes) have stopped
    print(f"worker exit codes after SIGTERM: {[ended.code for ended in exits]}", flush=True)
    return JobsSuite(sample, results, exits, import_seconds())


def run(folder: Path, short_runs: int = SHORT_RUNS) -> JobsSuite:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure_in_child, (folder, short_runs))


def arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--short-runs", type=int, default=SHORT_RUNS, help="short runs queued per throughput measurement")
    return parser


def main() -> None:
    options = arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0])).parse_args()
    with tempfile.TemporaryDirectory(prefix="tunedeck-jobs-") as folder:
        suite = run(Path(folder), options.short_runs)
    errors = [error for result in suite.throughput for error in result.errors]
    if suite.sample.status != "completed" or errors:
        raise SystemExit("\n".join([f"sample run {suite.sample.status}", *errors]))


if __name__ == "__main__":
    main()
