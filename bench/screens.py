"""Page script time of the screens at scale: the experiments list over 10,000 experiments, and one
experiment page with 200 runs x 10,000 steps (targets 150 ms and 300 ms of the script thread).
The experiment page is timed three times: while nothing writes, while 4 runs of another experiment
log a step every 50 ms, and while 4 more runs of its own do (each commit makes the store server's
store-wide answers stale; a run's curves stay cached until that run logs a point).
TUNEDECK_READ_CACHE_MB=0 times them with the cache off.

    python -m bench.screens                 # about a minute to seed, then 10 timed runs per page
    python -m bench.screens --profile       # and where each page's time goes
"""

import argparse
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from bench.pages import Page, ScriptThread, app_environment, profile_page, time_page
from bench.seed import build_store, served, stop_server
from bench.timing import Timing
from core.writer import MetricWriter

SAMPLE = "data/sample/sentiment.csv"
IDLE_S = 3.0  # seconds the store is left idle after seeding: it builds the ended runs' curve overviews (core.overviews)
TARGETS_MS = {"pages/experiments.py": 150.0, "pages/experiment.py": 300.0}


def seed_big_experiment(store, runs: int, steps: int) -> int:
    experiment_id = store.create_experiment({"name": "200-run sweep", "dataset": SAMPLE})
    run_ids = [store.create_run(experiment_id, {"learning_rate": 1e-4 * (r + 1), "epochs": 1}) for r in range(runs)]
    step = np.arange(1, steps + 1)
    rng = np.random.default_rng(0)
    with MetricWriter(store) as writer:
        for run_id in run_ids:
            writer.log_series(run_id, "loss", step, 2.0 / np.sqrt(step) + rng.normal(0, 0.02, steps))
            writer.log_series(run_id, "eval_loss", step[::500], 1.0 / np.sqrt(step[::500]))
    for run_id in run_ids:
        store.mark_running(run_id, worker="bench:1")
        store.complete_run(run_id)
    return experiment_id


def new_runs(store, experiment_id: int | None, runs: int = 4) -> list[int]:
    """Runs started in an experiment (a new one when None), as a worker marks them running."""
    if experiment_id is None:
        experiment_id = store.create_experiment({"name": "training meanwhile", "dataset": SAMPLE})
    run_ids = [store.create_run(experiment_id, {"learning_rate": 1e-4, "epochs": 1}) for _ in range(runs)]
    for run_id in run_ids:
        store.mark_running(run_id, worker="bench:2")
    return run_ids


@contextmanager
def training(store, run_ids: list[int], every_s: float = 0.05) -> Iterator[None]:
    """The runs logging a step of 4 metrics every `every_s` seconds, as a worker's writer does."""
    stop = threading.Event()

    def log() -> None:
        step = 0
        while not stop.wait(every_s):
            step += 1
            store.log_metrics(
                pl.DataFrame(
                    {
                        "run_id": [run_id for run_id in run_ids for _ in range(4)],
                        "key": ["loss", "eval_loss", "learning_rate", "grad_norm"] * len(run_ids),
                        "step": step,
                        "value": 1.0 / step,
                        "wall_time": datetime.now(UTC).replace(tzinfo=None),
                    }
                )
            )

    logger = threading.Thread(target=log, name="training-meanwhile", daemon=True)
    logger.start()
    try:
        yield
    finally:
        stop.set()
        logger.join()


def report(label: str, script: Timing, target: float) -> None:
    verdict = "pass" if script.median_ms <= target else "FAIL"
    print(f"{label}: script thread median {script.median_ms:.0f} ms, p90 {script.p90_ms:.0f} ms ({verdict} against <= {target:.0f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="then one run of each page under cProfile")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tunedeck-screens-") as folder:
        data_dir = Path(folder)
        build_store(data_dir / "tunedeck.duckdb", arguments.experiments, 1, 10)
        store = served(data_dir / "tunedeck.duckdb")
        try:
            big = seed_big_experiment(store, arguments.runs, arguments.steps)
            time.sleep(IDLE_S)
            pages = [Page("pages/experiments.py"), Page("pages/experiment.py", {"experiment": str(big)})]
            with app_environment(data_dir), ScriptThread() as thread:
                for page in pages:
                    _, script = time_page(page, thread, arguments.repeat, warmup=2)
                    report(page.link, script, TARGETS_MS[page.path])
                    if arguments.profile:
                        print("  under cProfile (ms including callees / own ms / calls):")
                        for spot in profile_page(page, thread, top=40):
                            print(f"  {spot.cumulative_ms:8.1f} {spot.own_ms:8.1f} {spot.calls:6d}  {spot.where}")
                target = TARGETS_MS[pages[1].path]
                with training(store, new_runs(store, None)):
                    _, script = time_page(pages[1], thread, arguments.repeat, warmup=2)
                    report(f"{pages[1].link} while 4 runs of another experiment train", script, target)
                with training(store, new_runs(store, big)):
                    _, script = time_page(pages[1], thread, arguments.repeat, warmup=2)
                    report(f"{pages[1].link} while 4 more of its own runs train", script, target)
        finally:
            stop_server(data_dir / "tunedeck.duckdb")


if __name__ == "__main__":
    main()
