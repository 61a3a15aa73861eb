"""Runs as rows of attributes, and groups of runs that share some of them (repeats over seeds, say).

`run_attributes` gives one row per run with a `params.<key>` column per config setting, a `tags.<key>`
column per tag and a `metrics.<key>` column per metric's last value; groups, parallel coordinates and
scatters all read it. Runs group by tags like by params.

Spread is the sample standard deviation (ddof=1, as pandas and W&B report it): a few seeds are a
sample of what the config does, not the whole population. A group of one run has no spread (null).
"""

import json
from typing import Any

import polars as pl

from core.entities import Run
from core.run_params import chosen_by_user

PARAM = "params."
TAG = "tags."
METRIC = "metrics."
SEED_KEYS = frozenset({"seed"})  # what "everything but the seed" leaves out by default


def run_attributes(runs: list[Run]) -> pl.DataFrame:
    """One row per run, in the order given: id, name, status, params.*, tags.* and metrics.* (last values) columns."""
    params = sorted({key for run in runs for key in run.config})
    tags = sorted({key for run in runs for key in run.tags})
    metrics = sorted({key for run in runs for key in run.metrics})
    columns: dict[str, pl.Series] = {
        "id": pl.Series([run.id for run in runs], dtype=pl.Int64),
        "name": pl.Series([run.name for run in runs], dtype=pl.String),
        "status": pl.Series([str(run.status) for run in runs], dtype=pl.String),
    }
    for key in params:
        columns[PARAM + key] = _param_column([run.config.get(key) for run in runs])
    for key in tags:
        columns[TAG + key] = pl.Series([run.tags.get(key) for run in runs], dtype=pl.String)
    for key in metrics:
        values = [run.metrics[key].last if key in run.metrics else None for run in runs]
        columns[METRIC + key] = pl.Series(values, dtype=pl.Float64)
    return pl.DataFrame(columns)


def _param_column(values: list[Any]) -> pl.Series:
    """Numbers stay numbers (ints as Float64 when floats mix in); anything else, lists included, becomes text."""
    present = [value for value in values if value is not None]
    if present and all(isinstance(value, int) and not isinstance(value, bool) for value in present):
        return pl.Series(values, dtype=pl.Int64)
    if present and all(isinstance(value, int | float) and not isinstance(value, bool) for value in present):
        return pl.Series([None if value is None else float(value) for value in values], dtype=pl.Float64)
    return pl.Series([None if value is None else _text(value) for value in values], dtype=pl.String)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ", ".join(value)
    return json.dumps(value, sort_keys=True)


def param_columns(frame: pl.DataFrame) -> list[str]:
    return [column for column in frame.columns if column.startswith(PARAM)]


def tag_columns(frame: pl.DataFrame) -> list[str]:
    return [column for column in frame.columns if column.startswith(TAG)]


def metric_columns(frame: pl.DataFrame) -> list[str]:
    return [column for column in frame.columns if column.startswith(METRIC)]


def short(column: str) -> str:
    """'params.learning_rate' -> 'learning_rate', 'tags.base' -> 'tags.base': how a column is labelled on screen."""
    return column.removeprefix(PARAM).removeprefix(METRIC)


def varying_params(frame: pl.DataFrame) -> list[str]:
    """The params whose value differs between runs: the only ones worth grouping, plotting or comparing. A param one
    run leaves out differs (it took the default), but a run with no params at all (a script's, beside the
    dashboard's runs) says nothing of them, so it does not make every param vary."""
    columns = param_columns(frame)
    if not columns:
        return []
    with_params = frame.filter(~pl.all_horizontal(pl.col(columns).is_null()))
    return [column for column in columns if with_params[column].n_unique() > 1]


def chosen_params(frame: pl.DataFrame) -> list[str]:
    """The varying params a user chose, leaving out what trainers report (parameter counts, steps per epoch) and
    what importers record (`import.source`: one value per run, so a group per run)."""
    return [column for column in varying_params(frame) if chosen_by_user(short(column))]


def default_group_keys(frame: pl.DataFrame) -> list[str]:
    """Every chosen param that varies but the seed: runs that differ only by seed fall into one group. Where those put
    every run in a group of its own (a search that drew a learning rate a run made 15 groups of one, whose mean ± std
    said nothing), the param of the most values goes, then the next, down to one param."""
    keys = [column for column in chosen_params(frame) if short(column) not in SEED_KEYS]
    while len(keys) > 1 and frame.select(keys).n_unique() == frame.height:
        keys.remove(max(keys, key=lambda column: frame[column].n_unique()))
    return keys


def group_runs(frame: pl.DataFrame, by: list[str], metrics: list[str]) -> pl.DataFrame:
    """One row per group of runs sharing the values of `by`: those values, `runs` (count), `run_ids`, and per
    metric `<metric> mean`, `<metric> std` (sample, ddof=1) and `<metric> n` (runs that logged it).

    No `by` puts every run in one group. Groups come sorted by their values, runs lacking a param last.
    """
    missing = [column for column in [*by, *metrics] if column not in frame.columns]
    if missing:
        raise ValueError(f"no column {', '.join(missing)} among the runs' params and metrics")
    stats = [
        expression
        for metric in metrics
        for expression in (
            pl.col(metric).mean().alias(f"{metric} mean"),
            pl.col(metric).std(ddof=1).alias(f"{metric} std"),
            pl.col(metric).count().alias(f"{metric} n"),
        )
    ]
    counts = [pl.len().cast(pl.Int64).alias("runs"), pl.col("id").sort().alias("run_ids")]
    if not by:
        return frame.with_columns(_all=pl.lit(0)).group_by("_all").agg(*counts, *stats).drop("_all")
    return frame.group_by(by).agg(*counts, *stats).sort(by, nulls_last=True)


def group_labels(frame: pl.DataFrame, by: list[str]) -> dict[int, str]:
    """Each run's group as it is named in legends: 'learning_rate=0.01, lora_rank=8' ('all runs' without `by`)."""
    if not by:
        return {run_id: "all runs" for run_id in frame["id"]}
    return {row["id"]: group_label(row, by) for row in frame.select("id", *by).iter_rows(named=True)}


def group_label(row: dict[str, Any], by: list[str]) -> str:
    return ", ".join(f"{short(column)}={'—' if row[column] is None else _shown(row[column])}" for column in by)


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
