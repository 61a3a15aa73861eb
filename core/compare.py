"""Side-by-side views of runs, built from run records alone (no store access)."""

import math
from statistics import fmean

from core.directions import Direction, direction_for, rank
from core.entities import ConfigDifference, MetricAggregate, MetricComparison, Run, RunComparison, RunStatus

OUT_OF_THE_RACE = frozenset({RunStatus.FAILED, RunStatus.CANCELLED})


def metric_keys(runs: list[Run]) -> list[str]:
    """Every metric any of the runs logged, sorted."""
    return sorted({key for run in runs for key in run.metrics})


def _best_run(values: dict[int, float | None], direction: Direction | None, least: int = 1) -> int | None:
    present = {run_id: value for run_id, value in values.items() if value is not None and math.isfinite(value)}
    if direction is None or not present or len(present) < least:
        return None
    return min(present, key=lambda run_id: rank(present[run_id], run_id, direction))


def compare_metrics(runs: list[Run], overrides: dict[str, Direction]) -> list[MetricComparison]:
    """Each metric's final values; the best among the runs still in the race: completed, or still going (a live
    leader). A failed or cancelled run's last value is shown but never best."""
    return _compared(runs, {key: direction_for(key, overrides) for key in metric_keys(runs)})


def _compared(runs: list[Run], directions: dict[str, Direction | None], least: int = 1) -> list[MetricComparison]:
    """`least`: how many runs in the race must have a value for one of them to be called best."""
    contenders = {run.id for run in runs if run.status not in OUT_OF_THE_RACE}
    rows = []
    for key in metric_keys(runs):
        values = {run.id: run.metrics[key].last if key in run.metrics else None for run in runs}
        direction = directions[key]
        best = _best_run({run_id: value for run_id, value in values.items() if run_id in contenders}, direction, least)
        rows.append(MetricComparison(key=key, direction=direction, values=values, best_run_id=best))
    return rows


def config_diff(runs: list[Run]) -> list[ConfigDifference]:
    keys = sorted({key for run in runs for key in run.config})
    rows = []
    for key in keys:
        values = {run.id: run.config.get(key) for run in runs}
        distinct = {repr(value) for value in values.values()}
        rows.append(ConfigDifference(key=key, values=values, differs=len(distinct) > 1))
    return rows


def compare_runs(runs: list[Run], overrides: dict[int, dict[str, Direction]]) -> RunComparison:
    """`overrides`: each run's experiment's. A metric whose experiments disagree on which way is better (one set it
    the other way) has no best run: taking the first run's experiment's word made the star follow the IDs' order."""
    directions, disputed = {}, []
    for key in metric_keys(runs):
        # the experiments of the runs that logged it, and only those that say a way: a name the rule cannot read
        # (no direction) defers to an experiment that set one
        said = {direction_for(key, overrides.get(run.experiment_id)) for run in runs if key in run.metrics} - {None}
        directions[key] = next(iter(said)) if len(said) == 1 else None
        if len(said) > 1:
            disputed.append(key)
    # side by side, a star says one run beat another: with one run in the race (the others failed or cancelled) none is
    # given, however its value compares with theirs
    metrics = _compared(runs, directions, least=2)
    return RunComparison(runs=runs, metrics=metrics, config=config_diff(runs), disputed=disputed)


def aggregate_metrics(runs: list[Run], overrides: dict[str, Direction]) -> list[MetricAggregate]:
    """Per metric key: best, mean and count of the completed runs' final values: the runs the experiment's best
    metrics and its adapters come from (a failed or unfinished run's last value is not a result)."""
    aggregates = []
    for row in compare_metrics([run for run in runs if run.status is RunStatus.COMPLETED], overrides):
        present = [value for value in row.values.values() if value is not None]
        best = row.values[row.best_run_id] if row.best_run_id is not None else None
        aggregates.append(
            MetricAggregate(
                key=row.key,
                direction=row.direction,
                best=best,
                best_run_id=row.best_run_id,
                mean=fmean(present),
                count=len(present),
            )
        )
    return aggregates
