"""The runs' search frame: one row per run, one column per thing the search language can name.

Built from three long tables any backend can read with plain SQL (runs, metric summaries, tags), so
each backend's `search_frame` primitive is three queries and this function. Columns:

    id, experiment_id, experiment, name, status, created, started, ended, duration (seconds), note,
    params.<name>, tags.<name>, metrics.<key>.last / .min / .max
"""

import json
from datetime import datetime

import polars as pl

OWN_TAGS = "own_tags"  # not a search field: search names tags one by one, inherited ones included
BUILTIN_FIELDS = ("id", "name", "status", "experiment", "created", "duration", "note")
METRIC_PARTS = ("last", "min", "max")
RUNS_SCHEMA = {
    "id": pl.Int64,
    "experiment_id": pl.Int64,
    "experiment": pl.String,
    "name": pl.String,
    "status": pl.String,
    "created_at": pl.Datetime("us"),
    "started_at": pl.Datetime("us"),
    "ended_at": pl.Datetime("us"),
    "config": pl.String,
    "note": pl.String,
}


def build_search_frame(runs: pl.DataFrame, summaries: pl.DataFrame, tags: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """runs: RUNS_SCHEMA's columns; summaries: run_id, key, last, min, max; tags: run_id, key, value, own
    (a run's own tag beats the same key on its experiment). Newest run first."""
    runs = runs.cast(RUNS_SCHEMA)  # type: ignore[arg-type]
    started = pl.col("started_at")
    frame = runs.select(
        "id",
        "experiment_id",
        "experiment",
        "name",
        "status",
        pl.col("created_at").alias("created"),
        started.alias("started"),
        pl.col("ended_at").alias("ended"),
        (pl.col("ended_at").fill_null(now) - started).dt.total_seconds(fractional=True).alias("duration"),
        pl.col("note").fill_null(""),
    )
    frame = pl.concat([frame, _params(runs["config"])], how="horizontal")
    frame = _join(frame, _tags(tags))
    frame = _join(frame, _own_tags(tags))
    frame = _join(frame, _metrics(summaries))
    return frame.sort("created", "id", descending=True)


def _params(config: pl.Series) -> pl.DataFrame:
    """Each config key as a column `params.<key>`: numbers stay numbers, lists read "a, b", objects as JSON."""
    if config.is_empty():
        return pl.DataFrame()
    try:
        decoded = config.str.json_decode(infer_schema_length=None)
    except pl.exceptions.PolarsError:  # a name holding an object in one run and a number or text in another
        return _params_value_by_value(config)
    if not decoded.dtype.fields:  # type: ignore[union-attr]
        return pl.DataFrame(height=config.len())
    frame = decoded.struct.unnest()
    return frame.select(_scalar(name, dtype).alias(f"params.{name}") for name, dtype in sorted(frame.schema.items()))


def _scalar(name: str, dtype: pl.DataType) -> pl.Expr:
    column = pl.col(name)
    if isinstance(dtype, pl.List):
        return column.list.eval(pl.element().cast(pl.String)).list.join(", ")
    if isinstance(dtype, pl.Struct):
        return pl.when(column.is_not_null()).then(column.struct.json_encode())  # a run without it: null, not "null"
    return column.cast(pl.String) if dtype == pl.Null else column


def _params_value_by_value(config: pl.Series) -> pl.DataFrame:
    """The same columns, read in Python where Polars cannot give one name one type: numbers stay numbers where every
    run's value is one, else every value is text as `_scalar` writes it."""
    rows = [json.loads(text) if text else {} for text in config.to_list()]
    names = sorted({name for row in rows for name in row})
    return pl.DataFrame([_column(f"params.{name}", [row.get(name) for row in rows]) for name in names])


def _column(name: str, values: list) -> pl.Series:
    given = [value for value in values if value is not None]
    if not given:  # null in every run, as the fast path types it
        return pl.Series(name, values, dtype=pl.String)
    if all(isinstance(value, bool) for value in given):
        return pl.Series(name, values, dtype=pl.Boolean)
    if all(isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63 for value in given):
        return pl.Series(name, values, dtype=pl.Int64)
    if all(isinstance(value, int | float) and not isinstance(value, bool) and abs(value) < 2**63 for value in given):
        return pl.Series(name, [None if value is None else float(value) for value in values], dtype=pl.Float64)
    return pl.Series(name, [None if value is None else _text(value) for value in values], dtype=pl.String)


def _text(value) -> str:
    if isinstance(value, list):
        return ", ".join(_text(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _tags(tags: pl.DataFrame) -> pl.DataFrame:
    if tags.is_empty():
        return pl.DataFrame(schema={"id": pl.Int64})
    latest = tags.sort("own").unique(["run_id", "key"], keep="last")
    wide = latest.pivot(on="key", index="run_id", values="value", sort_columns=True)
    return wide.rename(lambda name: "id" if name == "run_id" else f"tags.{name}")


def _own_tags(tags: pl.DataFrame) -> pl.DataFrame:
    """The run's own tags as one text, 'base=llama, seed=3': what a table shows (a search reads inherited ones too)."""
    own = tags.filter(pl.col("own").cast(pl.Boolean)) if not tags.is_empty() else tags
    if own.is_empty():
        return pl.DataFrame(schema={"id": pl.Int64})
    cells = own.sort("key").group_by("run_id", maintain_order=True).agg(
        pl.concat_str(pl.col("key"), pl.lit("="), pl.col("value")).str.join(", ").alias(OWN_TAGS)
    )
    return cells.rename({"run_id": "id"})


def _metrics(summaries: pl.DataFrame) -> pl.DataFrame:
    if summaries.is_empty():
        return pl.DataFrame(schema={"id": pl.Int64})
    keys = sorted(summaries["key"].unique().to_list())
    wide = summaries.pivot(on="key", index="run_id", values=list(METRIC_PARTS))  # one pivot: columns "<part>_<key>"
    names = {f"{part}_{key}": f"metrics.{key}.{part}" for key in keys for part in METRIC_PARTS}
    return wide.rename({"run_id": "id", **names}).select("id", *names.values())


def _join(frame: pl.DataFrame, columns: pl.DataFrame) -> pl.DataFrame:
    return frame if columns.width <= 1 else frame.join(columns, on="id", how="left", maintain_order="left")
