"""Which runs diverged: the rule every table, run page and adapter badge reads.

A run diverged when its training loss ends above where it started, or blew up on the way (rose to BLOWUP
times its start: a run whose loss reached 68 million at lr 10 and came back below its start had trained an
adapter worse than its base, and read "completed" beside milder runs flagged), or when it was stopped because
it logged a non-finite value (the writer refuses NaN and inf, and the run fails with that message).
The store keeps each metric's last value but not its first, so the start comes from the first point
of the run's series read at LOSS_POINTS (`find_diverged`), on every page: a page's own charted series
(another resolution, or no loss at all) gave the same run another verdict there.
"""

import polars as pl

from core.entities import Run
from core.points import NOT_FINITE
from core.store import TrackingStore

LOSS_KEYS = ("loss", "train_loss")
BLOWUP = 10.0  # a spike this many times the start is no warm-up wobble (those stay within two or three)
WHY_DIVERGED = "the loss ended above where it started, rose to ten times its start on the way, or went non-finite"
LOSS_POINTS = 100  # max_points to read loss series at: enough for a 30-point sparkline, and 50 buckets (core.overviews)


def loss_key(run: Run) -> str | None:
    """The training loss this run logged, if any."""
    return next((key for key in LOSS_KEYS if key in run.metrics), None)


def first_values(series: pl.DataFrame) -> dict[tuple[int, str], float]:
    """(run_id, key) -> the value at the run's lowest logged step of that key."""
    firsts = series.sort("run_id", "key", "step").group_by("run_id", "key", maintain_order=True).agg(pl.col("value").first())
    return {(run_id, key): value for run_id, key, value in firsts.iter_rows()}


def stopped_for_non_finite(run: Run) -> bool:
    return run.status == "failed" and NOT_FINITE in (run.error or "")


def is_diverged(run: Run, firsts: dict[tuple[int, str], float]) -> bool:
    """Loss ended above its start or blew up on the way, or the run was stopped for a non-finite value."""
    if stopped_for_non_finite(run):
        return True
    key = loss_key(run)
    if key is None or (run.id, key) not in firsts:
        return False
    start, loss = firsts[(run.id, key)], run.metrics[key]
    return loss.last > start or (start > 0 and loss.max >= BLOWUP * start)


def diverged_runs(runs: list[Run], series: pl.DataFrame) -> set[int]:
    """IDs of the runs that diverged, given their loss series.

    A downsampled series starts with the lowest or highest point of the first bucket, so the start is
    exact for short runs and the first bucket's extreme for long ones (a store column would make it exact).
    """
    firsts = first_values(series)
    return {run.id for run in runs if is_diverged(run, firsts)}


def find_diverged(store: TrackingStore, runs: list[Run]) -> set[int]:
    """IDs of the runs that diverged, reading their loss series (for pages that have not read them already)."""
    if not runs:
        return set()
    return diverged_runs(runs, store.get_metric_series([run.id for run in runs], list(LOSS_KEYS), max_points=LOSS_POINTS))
