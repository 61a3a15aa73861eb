"""Where the experiment page's script time goes: the core calls it makes for one experiment of 200 runs x 10,000
steps, timed one by one through the store server, in the page's order (medians of 5).

The server's read cache is off (TUNEDECK_READ_CACHE_MB=0): these are the reads of a first view after a write, the
slowest case; with the cache, a repeated read is answered in about a millisecond.

    python -m bench.profile_page                 # about half a minute, most of it seeding
"""

import argparse
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

import polars as pl
from streamlit import dataframe_util

from bench.screens import IDLE_S, seed_big_experiment
from bench.seed import served, stop_server
from bench.timing import measure
from core import charts
from core.divergence import LOSS_KEYS, LOSS_POINTS, diverged_runs
from core.groups import run_attributes
from core.presenters import runs_frame


def timed(label: str, call, repeat: int):
    """The call's result, after printing its median time over `repeat` more calls."""
    result = call()
    print(f"{label:58s} median {measure(call, repeat, warmup=0).median_ms:7.1f} ms")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    arguments = parser.parse_args()
    repeat = arguments.repeat
    os.environ["TUNEDECK_READ_CACHE_MB"] = "0"  # the server this starts reads every time
    with tempfile.TemporaryDirectory(prefix="tunedeck-profile-") as folder:
        path = Path(folder) / "tunedeck.duckdb"
        store = served(path)
        try:
            experiment_id = seed_big_experiment(store, arguments.runs, arguments.steps)
            time.sleep(IDLE_S)  # as after training: the idle store builds the ended runs' curve overviews
            timed("get_experiment", lambda: store.get_experiment(experiment_id), repeat)
            detail = timed("get_experiment_detail", lambda: store.get_experiment_detail(experiment_id), repeat)
            run_ids = [run.id for run in detail.runs]
            points = charts.points_per_curve(len(run_ids), 2)
            series = timed(
                f"one series read: sparklines, divergence, loss and eval_loss charts (max_points={2 * points})",
                lambda: store.get_metric_series(run_ids, [*LOSS_KEYS, "eval_loss"], max_points=max(LOSS_POINTS, 2 * points)),
                repeat,
            )
            loss = series.filter(pl.col("key").is_in(LOSS_KEYS))
            timed("diverged_runs", lambda: diverged_runs(detail.runs, loss), repeat)
            timed("search_frame", lambda: store.search_frame([experiment_id]), repeat)
            lines = timed("sparklines", lambda: charts.sparklines(loss, "loss"), repeat)
            frame = timed("runs_frame", lambda: runs_frame(detail.runs, lines, now=datetime.now(), diverged=set()), repeat)
            timed(
                "runs table as Arrow (what st.dataframe sends)",
                lambda: dataframe_util.convert_anything_to_arrow_bytes(frame),
                repeat,
            )
            timed("run_attributes", lambda: run_attributes(detail.runs), repeat)
            options = charts.ChartOptions(smoothing=0, log_scale=False, x="step", ignore_outliers=True, buckets=points)
            names = {run_id: f"run {run_id}" for run_id in run_ids}
            timed(
                "metric_panels",
                lambda: charts.metric_panels(series, ["eval_loss", "loss"], run_names=names, options=options),
                repeat,
            )
        finally:
            stop_server(path)


if __name__ == "__main__":
    main()
