"""Page script time of the screens at scale: the experiments list over 10,000 experiments, and one
experiment page with 200 runs x 10,000 steps (targets 150 ms and 300 ms of the script thread).

    python -m bench.screens                 # about a minute to seed, then 10 timed runs per page
    python -m bench.screens --profile       # and where each page's time goes
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bench.pages import Page, ScriptThread, app_environment, profile_page, time_page
from bench.seed import build_store, served, stop_server
from core.writer import MetricWriter

SAMPLE = "data/sample/sentiment.csv"
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
            pages = [Page("pages/experiments.py"), Page("pages/experiment.py", {"experiment": str(big)})]
            with app_environment(data_dir), ScriptThread() as thread:
                for page in pages:
                    _, script = time_page(page, thread, arguments.repeat, warmup=2)
                    target = TARGETS_MS[page.path]
                    verdict = "pass" if script.median_ms <= target else "FAIL"
                    print(
                        f"{page.link}: script thread median {script.median_ms:.0f} ms, p90 {script.p90_ms:.0f} ms "
                        f"({verdict} against <= {target:.0f} ms)"
                    )
                    if arguments.profile:
                        print("  under cProfile (ms including callees / own ms / calls):")
                        for spot in profile_page(page, thread, top=40):
                            print(f"  {spot.cumulative_ms:8.1f} {spot.own_ms:8.1f} {spot.calls:6d}  {spot.where}")
        finally:
            stop_server(data_dir / "tunedeck.duckdb")


if __name__ == "__main__":
    main()
