"""Runs and their curves as files to take elsewhere (a notebook, a spreadsheet): CSV or Parquet bytes.

The runs table is the search frame (params, tags, last/min/max of each metric, status, times, note); the
curves are every logged point of the chosen runs, long: run_id, run, key, step, value, wall_time.
"""

import io
from collections.abc import Callable
from typing import Literal

import polars as pl

from core.errors import ValidationError
from core.search_frame import OWN_TAGS

Format = Literal["csv", "parquet"]
FORMATS: tuple[Format, ...] = ("csv", "parquet")
MIME = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
LABELS = {"csv": "CSV", "parquet": "Parquet"}
MAX_CURVE_RUNS = 50  # full curves, not downsampled: a cap keeps the file (and the request) a sane size


def file_bytes(frame: pl.DataFrame, kind: Format) -> bytes:
    writers: dict[str, Callable[[io.BytesIO], None]] = {"csv": frame.write_csv, "parquet": frame.write_parquet}
    if kind not in writers:
        raise ValidationError(f"export as csv or parquet, not {str(kind)[:20]!r}")
    buffer = io.BytesIO()
    writers[kind](buffer)
    return buffer.getvalue()


VARYING = ("params.", "tags.", "metrics.")  # columns one run has and another may not


def runs_table(search_frame: pl.DataFrame) -> pl.DataFrame:
    """The search frame as an export: `run_id` first, then everything a search can name that these runs have (a
    param, tag or metric of runs a search left out is no empty column here)."""
    frame = search_frame.rename({"id": "run_id"}).drop(OWN_TAGS, strict=False)
    empty = [name for name in frame.columns if name.startswith(VARYING) and frame[name].null_count() == frame.height]
    return frame.drop(empty) if frame.height else frame


def curves(series: pl.DataFrame, names: dict[int, str]) -> pl.DataFrame:
    """Every point of get_metric_series(..., max_points=None), with each run's name beside its ID."""
    run = pl.col("run_id").replace_strict(names, default=None, return_dtype=pl.String).alias("run")
    return series.select("run_id", run, "key", "step", "value", "wall_time")


def check_curve_runs(run_ids: list[int]) -> None:
    if len(run_ids) > MAX_CURVE_RUNS:
        raise ValidationError(f"export the curves of at most {MAX_CURVE_RUNS} runs at once; {len(run_ids)} are selected")
