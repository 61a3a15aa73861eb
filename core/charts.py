"""Metric charts as pure functions: a metric-series frame in, an Altair chart (or plain lists) out.

Frames are what `TrackingStore.get_metric_series` returns: run_id, key, step, value, wall_time,
ordered by run, key and step. Nothing here draws; pages hand the charts to Streamlit.
"""

from typing import Literal

import altair as alt
import polars as pl

# Curves are downsampled in the query (at most ~1,000 points per run and key), so the row count
# is bounded by design; Altair's 5,000-row guard would only stop a 50-run chart outside Streamlit.
alt.data_transformers.disable_max_rows()

XAxis = Literal["step", "elapsed"]

RAW_OPACITY = 0.25
SMALL_WIDTH = 280
SMALL_HEIGHT = 180
_X_TITLES = {"step": "step", "elapsed": "elapsed (s)"}


def smooth(series: pl.DataFrame, weight: float) -> pl.DataFrame:
    """Add `smoothed`: TensorBoard's debiased EMA per run and key, so early points are not pulled toward 0.

    Debiasing makes this the weighted mean of the points so far (Polars' adjusted EWM).
    Non-finite values are skipped and leave `smoothed` null.
    """
    if not 0 <= weight < 1:
        raise ValueError(
            f"smoothing weight must be at least 0 and below 1 (0 keeps raw values, 0.99 is very smooth), got {weight!r}"
        )
    finite = pl.when(pl.col("value").is_finite()).then(pl.col("value"))
    ema = finite.ewm_mean(alpha=1 - weight, adjust=True, ignore_nulls=True).over("run_id", "key")
    return series.sort("run_id", "key", "step").with_columns(smoothed=ema)


def run_label(run_id: int, run_names: dict[int, str] | None = None) -> str:
    """How a run is named in legends and tooltips: 'name (#id)', or '#id' when it has no name."""
    name = (run_names or {}).get(run_id)
    return f"{name} (#{run_id})" if name else f"#{run_id}"


def run_labels(series: pl.DataFrame, run_names: dict[int, str] | None = None) -> list[str]:
    """Labels of every run in the frame, by run ID: the colour domain every chart of it shares."""
    return [run_label(run_id, run_names) for run_id in series["run_id"].unique().sort()]


def metric_chart(
    series: pl.DataFrame,
    key: str,
    *,
    run_names: dict[int, str] | None = None,
    smoothing: float = 0.0,
    log_scale: bool = False,
    x: XAxis = "step",
) -> alt.Chart | alt.LayerChart:
    """One line per run for one metric key, zoomable along x; a LayerChart when smoothing draws raw behind.

    Colours come from the runs of the whole frame, so charts of different keys from one frame agree.
    """
    return _draw(series, key, run_names, smoothing, log_scale, x).add_params(_zoom("zoom"))


def overlay_charts(
    series: pl.DataFrame,
    keys: list[str],
    *,
    run_names: dict[int, str] | None = None,
    smoothing: float = 0.0,
    log_scale: bool = False,
    x: XAxis = "step",
    columns: int = 2,
) -> alt.ConcatChart:
    """A small chart per key in a grid, each run one colour in all of them, under a single legend.

    Each chart zooms on its own: a zoom named per position, as Altair merges (and warns about) equal ones.
    """
    charts = [
        _draw(series, key, run_names, smoothing, log_scale, x)
        .add_params(_zoom(f"zoom_{position}"))
        .properties(width=SMALL_WIDTH, height=SMALL_HEIGHT)
        for position, key in enumerate(keys)
    ]
    return alt.concat(*charts, columns=columns).resolve_scale(color="shared").resolve_legend(color="shared")


def sparklines(series: pl.DataFrame, key: str, points: int = 30) -> dict[int, list[float]]:
    """Per run, at most `points` values of a key, spread evenly from first to last (for LineChartColumn)."""
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ValueError(f"a sparkline needs a whole number of at least 2 points, got {points!r}")
    per_run = series.filter(pl.col("key") == key).sort("run_id", "step").group_by("run_id", maintain_order=True).agg("value")
    return {run_id: _spread(values, points) for run_id, values in per_run.iter_rows()}


def _spread(values: list[float], points: int) -> list[float]:
    if len(values) <= points:
        return values
    last = len(values) - 1
    return [values[round(i * last / (points - 1))] for i in range(points)]


def _draw(
    series: pl.DataFrame, key: str, run_names: dict[int, str] | None, smoothing: float, log_scale: bool, x: XAxis
) -> alt.Chart | alt.LayerChart:
    _check_x_axis(x)
    points, hidden = _points(series, key, run_names, log_scale)
    points = smooth(points, smoothing).drop("run_id", "key")
    base = alt.Chart(points).encode(
        x=alt.X(f"{x}:Q", title=_X_TITLES[x]),
        color=alt.Color("run:N", title="run", scale=alt.Scale(domain=run_labels(series, run_names))),
        tooltip=_tooltip(smoothing > 0),
    )
    y_scale = alt.Scale(type="log") if log_scale else alt.Scale(zero=False)
    if smoothing == 0:
        chart = base.mark_line().encode(y=alt.Y("value:Q", title=key, scale=y_scale))
    else:
        raw = base.mark_line(opacity=RAW_OPACITY).encode(y=alt.Y("value:Q", title=key, scale=y_scale))
        chart = alt.layer(raw, base.mark_line().encode(y=alt.Y("smoothed:Q", title=key, scale=y_scale)))
    return chart.properties(title=_title(key, points.is_empty(), hidden))


def _zoom(name: str) -> alt.Parameter:
    return alt.selection_interval(bind="scales", encodings=["x"], name=name)


def _check_x_axis(x: str) -> None:
    if x not in _X_TITLES:
        raise ValueError(f"x must be one of {sorted(_X_TITLES)}, got {x!r}")


def _points(series: pl.DataFrame, key: str, run_names: dict[int, str] | None, log_scale: bool) -> tuple[pl.DataFrame, int]:
    """The key's points ready to draw, and how many a log scale hid.

    Elapsed counts from the run's first point of any key; non-finite values become null (no NaN in JSON).
    """
    elapsed = (pl.col("wall_time") - pl.col("wall_time").min().over("run_id")).dt.total_microseconds() / 1e6
    labels = {run_id: run_label(run_id, run_names) for run_id in series["run_id"].unique()}
    points = (
        series.with_columns(elapsed=elapsed)
        .filter(pl.col("key") == key)
        .with_columns(
            value=pl.when(pl.col("value").is_finite()).then(pl.col("value")),
            run=pl.col("run_id").replace_strict(labels, return_dtype=pl.String),
        )
        .select("run_id", "key", "run", "step", "elapsed", "value")
    )
    if not log_scale:
        return points, 0
    hidden = points.filter(pl.col("value") <= 0).height
    return points.filter(pl.col("value") > 0), hidden


def _tooltip(smoothed: bool) -> list[alt.Tooltip]:
    tooltip = [
        alt.Tooltip("run:N", title="run"),
        alt.Tooltip("step:Q", title="step"),
        alt.Tooltip("value:Q", title="value", format=".4g"),
        alt.Tooltip("elapsed:Q", title="elapsed (s)", format=".1f"),
    ]
    return [*tooltip, alt.Tooltip("smoothed:Q", title="smoothed", format=".4g")] if smoothed else tooltip


def _title(key: str, empty: bool, hidden: int) -> alt.TitleParams:
    text = f"{key}: no points yet" if empty else key
    if not hidden:
        return alt.TitleParams(text=text)
    return alt.TitleParams(text=text, subtitle=f"{hidden} point{'s' if hidden != 1 else ''} ≤ 0 hidden on the log scale")
