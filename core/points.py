"""What a metric point is, and the one set of rules every way of logging one goes through.

The SDK checks each call as it is made (so a mistake surfaces at the line that made it), and the
store checks every batch again at its own boundary, since anyone may call `log_metrics` directly.
"""

import math
import re

import numpy as np
import polars as pl

from core.errors import ValidationError

KEY_CHARACTERS = r"A-Za-z0-9_.\-/:@ "  # of metric keys, and of tag keys, which search reads the same way
MAX_KEY = 250
KEY_PATTERN = re.compile(rf"^[{KEY_CHARACTERS}]{{1,{MAX_KEY}}}$")
KEY_RULE = "use 1 to 250 unaccented letters, digits, spaces or _ . - / : @"
MAX_WHOLE = 2**63 - 1  # the largest step or run ID the store's 64-bit columns hold
POINT_SCHEMA = {"run_id": pl.Int64, "key": pl.String, "step": pl.Int64, "value": pl.Float64, "wall_time": pl.Datetime("us")}


def check_key(key: object) -> str:
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        shown = repr(key) if not isinstance(key, str) or len(key) <= 60 else f"{key[:40]!r}... ({len(key)} characters)"
        raise ValidationError(f"metric key {shown} is not allowed: {KEY_RULE}", {"key": "invalid"})
    return key


def check_run_id(run_id: object) -> int:
    if isinstance(run_id, bool) or not isinstance(run_id, (int, np.integer)) or not 1 <= run_id <= MAX_WHOLE:
        raise ValidationError(f"run ID must be a positive whole number, got {run_id!r}", {"run_id": "invalid"})
    return int(run_id)


def check_step(step: object) -> int:
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or not 0 <= step <= MAX_WHOLE:
        raise ValidationError(f"step must be a whole number from 0 to 2^63 - 1, got {step!r}", {"step": "invalid"})
    return int(step)


NOT_FINITE = "only finite numbers are stored"  # in every refusal of NaN or inf: core.divergence marks such runs by it


_NOT_NUMBERS = (bool, np.complexfloating)  # a bool is an int to Python, a complex a np.number to NumPy


def check_value(key: str, value: object) -> float:
    if isinstance(value, _NOT_NUMBERS) or not isinstance(value, (int, float, np.number)):
        raise ValidationError(f"metric {key!r} must be a number, got {type(value).__name__}", {key: "not a number"})
    try:
        value = float(value)
    except OverflowError:  # a whole number past any float
        raise ValidationError(f"metric {key!r} is too large to store as a number", {key: "too large"}) from None
    if not math.isfinite(value):
        raise ValidationError(
            f"metric {key!r} is {value}: {NOT_FINITE} (did the training diverge?)", {key: "not finite"}
        )
    return value


def checked_points(points: pl.DataFrame) -> pl.DataFrame:
    """A batch in the store's schema, or ValidationError naming the first rule it breaks; checked as whole columns."""
    if not isinstance(points, pl.DataFrame):
        raise ValidationError(f"points must be a Polars DataFrame, got {type(points).__name__}")
    missing = [column for column in POINT_SCHEMA if column not in points.columns]
    if missing:
        raise ValidationError(f"points lack the {'column' if len(missing) == 1 else 'columns'} {', '.join(missing)}: each point needs {', '.join(POINT_SCHEMA)}")
    if points.columns != list(POINT_SCHEMA):
        points = points.select(POINT_SCHEMA.keys())
    for column in ("run_id", "key", "step", "value"):
        nulls = points[column].null_count()
        if nulls:
            raise ValidationError(f"{nulls} point(s) have no {column}: every point needs a run ID, key, step and value")
    points = _cast_whole(points, "run_id", "run ID")
    points = _cast_whole(points, "step", "step")
    if points["key"].dtype != pl.String:
        raise ValidationError(f"metric keys must be text, got {points['key'].dtype}")
    values = points["value"]
    try:
        values = values if values.dtype == pl.Float64 else values.cast(pl.Float64, strict=True)
    except pl.exceptions.InvalidOperationError:
        raise ValidationError(f"metric values must be numbers, got {points['value'].dtype}") from None
    if points.height and (points["run_id"].min() < 1):
        raise ValidationError(f"run ID must be a positive whole number, got {points['run_id'].min()}", {"run_id": "invalid"})
    if points.height and points["step"].min() < 0:
        raise ValidationError(f"step must be a whole number from 0, got {points['step'].min()}", {"step": "invalid"})
    for key in points["key"].unique().to_list():  # the distinct keys, checked in Python: a batch has few
        check_key(key)
    finite = values.is_finite()
    if not finite.all():
        first_bad = finite.arg_min()
        check_value(points["key"][first_bad], values[first_bad])
    given = wall_time = points["wall_time"]
    if wall_time.dtype != POINT_SCHEMA["wall_time"]:
        try:
            wall_time = wall_time.cast(POINT_SCHEMA["wall_time"], strict=True)
        except pl.exceptions.InvalidOperationError:
            raise ValidationError(f"wall_time must be a timestamp, got {points['wall_time'].dtype}") from None
    if wall_time.null_count():
        wall_time = wall_time.fill_null(np.datetime64("now", "us"))
    if values.dtype == points["value"].dtype and wall_time is given:
        return points  # already in the store's schema: the common case, with no copy (~1 ms less per batch)
    return points.with_columns(value=values, wall_time=wall_time)


def _cast_whole(points: pl.DataFrame, column: str, what: str) -> pl.DataFrame:
    series = points[column]
    if not series.dtype.is_integer() and not series.dtype.is_float():
        raise ValidationError(f"{what} must be a whole number, got values of type {series.dtype}", {column: "invalid"})
    if series.dtype.is_float():
        whole = series.is_finite() & (series == series.floor())
        if not whole.all():
            raise ValidationError(f"{what} must be a whole number, got {series.filter(~whole)[0]!r}", {column: "invalid"})
    if series.dtype == pl.Int64:
        return points
    try:
        return points.with_columns(series.cast(pl.Int64, strict=True))
    except pl.exceptions.InvalidOperationError:
        raise ValidationError(f"{what} must be at most 2^63 - 1, got {series.max()!r}", {column: "invalid"}) from None
