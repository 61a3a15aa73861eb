"""Metric charts as pure functions: a metric-series frame in, an Altair chart (or plain lists) out.

Frames are what `TrackingStore.get_metric_series` returns: run_id, key, step, value, wall_time,
ordered by run, key and step. Nothing here draws; pages hand the charts to Streamlit.

A chart reads at a glance even when one run misbehaves: the y range fits the bulk of the points
(a diverged run's spike is clipped, not allowed to flatten the others), a curve longer than the
chart has room for becomes a min/max band around its bucket means, and up to 20 runs get colours
of their own. Clicking a legend entry highlights that run; dragging pans, scrolling zooms.
"""

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from core.overviews import curve_buckets
from core.presenters import middle_cut

XAxis = Literal["step", "wall_time", "elapsed"]
X_AXES: dict[str, str] = {"step": "step", "wall_time": "wall time", "elapsed": "relative time (s)"}

# 20 categorical colours for thin lines on white: Tableau's ten (Vega's default, familiar), then ten more, each the
# one farthest from all before it (CIEDE2000; lightness 28 to 72 and at least 30 from white, so that none fades into
# the background; candidates on a grid of 17 per channel). No two
# differ by less than 16 (ΔE00); navy and indigo, 7.9 apart, were told apart by nobody.
PALETTE = (
    "#1f77b4",  # blue
    "#d62728",  # red
    "#2ca02c",  # green
    "#ff7f0e",  # orange
    "#9467bd",  # purple
    "#17becf",  # cyan
    "#8c564b",  # brown
    "#e377c2",  # pink
    "#7f7f7f",  # grey
    "#bcbd22",  # olive
    "#005544",  # deep teal
    "#665500",  # dark olive
    "#0011dd",  # ultramarine
    "#880066",  # plum
    "#444455",  # slate
    "#88aaff",  # periwinkle
    "#ff8888",  # salmon
    "#aa8844",  # tan
    "#226600",  # forest
    "#dd1177",  # raspberry
)
PANEL_HEIGHT = 260
LEGEND_ROWS = 11  # legend entries a panel holds in one column below its title, the outliers' note and its own title
PLOT_WIDTH = 1000  # a full-width panel at 1440 px (980 px beside the open sidebar)
PAGE_POINT_BUDGET = 12_000  # rows a page's charts send in all: ~25 bytes each in Arrow, so ≤ 300 KB
MIN_POINTS = 50
OUTLIER_SPREAD = 3.0  # typical run spans a run's extreme may lie beyond the runs' median extreme
RAW_OPACITY = 0.25
BAND_OPACITY = 0.18
FADED = 0.12  # runs not picked in the legend
DATASET = "points"
_PICK = {"name": "pick", "select": {"type": "point", "fields": ["run"]}, "bind": "legend"}  # click a legend entry
_ZOOM = {"name": "zoom", "select": {"type": "interval", "encodings": ["x", "y"]}, "bind": "scales"}  # drag, scroll


@dataclass(frozen=True)
class ChartOptions:
    """How every panel of a page is drawn; pages build one from their widgets."""

    smoothing: float = 0.0
    log_scale: bool = False
    x: XAxis = "step"
    ignore_outliers: bool = True
    buckets: int | None = None  # bucket curves longer than this into a min/max band; None keeps every point

    def __post_init__(self):
        if self.x not in X_AXES:
            raise ValueError(f"x must be one of {sorted(X_AXES)}, got {self.x!r}")
        if self.buckets is not None and self.buckets < 2:
            raise ValueError(f"a curve needs at least 2 buckets, got {self.buckets!r}")


def points_per_curve(runs: int, panels: int, width: int = PLOT_WIDTH, budget: int = PAGE_POINT_BUDGET) -> int:
    """Points one curve needs: one per two pixels of the chart at most, the page's budget shared by every curve,
    rounded down to a count the store's curve overviews answer (core.overviews: 50, 100, 125, 250, 500...).

    Ask the store for twice as many (`max_points=2 * n`): it keeps each bucket's lowest and highest point.
    """
    curves = max(1, runs) * max(1, panels)
    return curve_buckets(max(MIN_POINTS, min(width // 2, budget // curves)))


def default_panels(keys: list[str], preferred: list[str], count: int = 2) -> list[str]:
    """The panels a page opens with, of `keys`: the preferred ones there, each once (an experiment's primary metric
    is often `loss` itself, which the page prefers too), topped up from the others in order to `count`."""
    chosen = [key for key in dict.fromkeys(preferred) if key in keys]
    return chosen + [key for key in keys if key not in chosen][: max(0, count - len(chosen))]


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


def robust_range(points: pl.DataFrame, log: bool = False, spread: float = OUTLIER_SPREAD) -> tuple[float, float] | None:
    """The y range that fits the bulk of the runs (run_id and value columns), padded by 5 %; None when empty.

    A run whose highest (or lowest) value lies more than `spread` typical spans (the median span of the runs that
    have one, or how far apart the middle half of the runs lie, whichever is wider: runs of one point each have no
    span) beyond the runs' median highest (lowest) value is an outlier on that side, and the range leaves it out: one
    diverged run's spike to 100x no longer squashes the others, while every normal curve keeps its
    start. Measured on log values when `log`. With one or two runs no run can be an outlier.
    """
    values = _floats(points["value"])
    usable = np.isfinite(values) & ((values > 0) if log else True)
    if not usable.any():
        return None
    scaled = np.log(values[usable]) if log else values[usable]
    runs = points["run_id"].to_numpy()[usable]
    order = np.argsort(runs, kind="stable")
    scaled, runs = scaled[order], runs[order]
    heads = np.flatnonzero(np.r_[True, runs[1:] != runs[:-1]])
    lows, highs = np.minimum.reduceat(scaled, heads), np.maximum.reduceat(scaled, heads)
    low_mid, high_mid = float(np.median(lows)), float(np.median(highs))
    spans = highs - lows  # a run of one point (an eval logged once) has none, and says nothing of a typical span
    typical = float(np.median(spans[spans > 0])) if (spans > 0).any() else 0.0
    # How far apart the bulk of the runs lie, from runs' own values only: interpolated, three runs' upper quartile
    # fell partly on a diverged third run, and that tolerance let its spike squash the other two again.
    between = float(np.quantile(highs, 0.75, method="lower") - np.quantile(lows, 0.25, method="higher"))
    tolerance = spread * max(typical, between, abs(high_mid) * 0.1, 1e-12)
    high = float(highs[highs <= high_mid + tolerance].max())
    low = float(lows[lows >= low_mid - tolerance].min())
    pad = (high - low) * 0.05 or abs(high) * 0.05 or 1.0
    low, high = low - pad, high + pad
    return (math.exp(low), math.exp(high)) if log else (float(low), float(high))


def _floats(column: pl.Series) -> np.ndarray:
    """A column as float64 NumPy, missing values as NaN."""
    return column.cast(pl.Float64).fill_null(np.nan).to_numpy()


def bucketed(points: pl.DataFrame, buckets: int) -> pl.DataFrame:
    """Per run, a curve of more than `buckets` points becomes `buckets` rows: the mean as `value`, min and max
    as `low` and `high` (null for curves short enough to draw whole). x columns take the bucket's first point.

    Sorted by run and step, each bucket is a stretch of consecutive rows, reduced with NumPy:
    a Polars group_by took 5 to 7 ms for one panel's 6,000 points, and a page draws several panels per view.
    """
    points = points.sort("run_id", "step")
    height = points.height
    if height == 0:
        return points.with_columns(low=pl.lit(None, pl.Float64), high=pl.lit(None, pl.Float64))
    run = points["run_id"].to_numpy()
    step = points["step"].to_numpy().astype(np.int64)
    value = _floats(points["value"])
    starts = np.flatnonzero(np.r_[True, run[1:] != run[:-1]])
    sizes = np.diff(np.r_[starts, height])
    first, last = np.repeat(step[starts], sizes), np.repeat(step[starts + sizes - 1], sizes)
    long = np.repeat(sizes > buckets, sizes)
    gap = last - first  # steps are 0 to 2^63 - 1: this fits, `gap + 1` times `buckets` may not
    wide = long & (gap >= np.iinfo(np.int64).max // buckets)
    with np.errstate(over="ignore", divide="ignore"):  # wrapped only where `wide`, and those are done again below
        bucket = np.where(long, (step - first) * buckets // (gap + 1), np.arange(height))
    if wide.any():  # Python's whole numbers for the few curves that span more than 2^63 / buckets steps
        offsets, spans = (step - first)[wide].astype(object), gap[wide].astype(object) + 1
        bucket[wide] = (offsets * buckets // spans).astype(np.int64)
    heads = np.flatnonzero(np.r_[True, (run[1:] != run[:-1]) | (bucket[1:] != bucket[:-1])])
    present = ~np.isnan(value)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.add.reduceat(np.where(present, value, 0.0), heads) / np.add.reduceat(present, heads)
        low, high = np.fmin.reduceat(value, heads), np.fmax.reduceat(value, heads)
    drawn_whole = ~long[heads]
    low[drawn_whole] = high[drawn_whole] = np.nan
    return points[heads].with_columns(
        value=pl.Series(mean, nan_to_null=True),
        low=pl.Series(low, nan_to_null=True),
        high=pl.Series(high, nan_to_null=True),
    )


LABEL_NAME_CHARS = 24  # a longer name is shortened in the middle: a legend cut its end, and with it the ID


def run_label(run_id: int, run_names: dict[int, str] | None = None) -> str:
    """How a run is named in legends and tooltips: 'name (#id)', or '#id' when it has no name. A long name keeps its
    start and end ('lora-r64-al…rmup500-bs32 (#9)'): sweep runs share a prefix and differ at the end."""
    name = (run_names or {}).get(run_id)
    return f"{middle_cut(name, LABEL_NAME_CHARS)} (#{run_id})" if name else f"#{run_id}"


def run_labels(series: pl.DataFrame, run_names: dict[int, str] | None = None) -> list[str]:
    """Labels of every run in the frame, by run ID: the colour domain every chart of it shares."""
    return [run_label(run_id, run_names) for run_id in series["run_id"].unique().sort()]


def run_colours(count: int) -> list[str]:
    """One colour per run, in domain order: distinct up to 20 runs, then the palette repeats."""
    return [PALETTE[index % len(PALETTE)] for index in range(count)]


def family_colours(shown: list[int], family: list[int] | None) -> list[str]:
    """The colours of the runs `shown` (in ID order): each the one its experiment's charts give it, its place among
    the experiment's runs (`family`, in ID order), so a run compared or opened alone keeps its colour; unless two runs
    shown would then share one (an experiment of more than 20 runs): then each its own, in ID order."""
    shown = sorted(set(shown))
    places = {run_id: index % len(PALETTE) for index, run_id in enumerate(sorted(set(family or [])))}
    slots = [places.get(run_id) for run_id in shown]
    if None in slots or len(set(slots)) < len(slots):
        return run_colours(len(shown))
    return [PALETTE[slot] for slot in slots]


def colour_by(
    field: str, labels: list[str], label_limit: int = 260, drawn: set[str] | None = None, colours: list[str] | None = None
) -> dict:
    """A colour per label, in the order given (distinct up to 20, or `colours`), with a legend that shows each in full
    colour. `drawn`: the labels this chart has points of, when fewer: the legend lists only those, the colours stay."""
    # Rows tight enough that a panel's height holds LEGEND_ROWS entries, then a second column: 20 runs' entries stay in
    # view (with the default spacing a 260-pixel panel cut the legend after the 7th run; at 14 rows, below the outliers'
    # note, after the 12th).
    legend = {"labelLimit": label_limit, "symbolLimit": 0, "symbolOpacity": 1, "symbolSize": 60, "rowPadding": 1, "clipHeight": 14}
    shown = [label for label in labels if label in drawn] if drawn is not None else labels
    if drawn is not None and not drawn >= set(labels):
        legend["values"] = shown
    if len(shown) > LEGEND_ROWS:
        legend |= {"columns": 2, "labelLimit": min(label_limit, 130)}
    return {
        "field": field,
        "type": "nominal",
        "title": field,
        "scale": {"domain": labels, "range": colours or run_colours(len(labels))},
        "legend": legend,
    }


def metric_spec(
    series: pl.DataFrame,
    key: str,
    *,
    run_names: dict[int, str] | None = None,
    options: ChartOptions | None = None,
    labels: list[str] | None = None,
    colours: list[str] | None = None,
) -> dict:
    """One curve per run for one metric key, full width, the same colour per run in every chart of the frame.

    A Vega-Lite spec (what Altair writes; tests check it against Altair's schema) whose points ride under
    `datasets` as a Polars frame in compact types. Built as a dict: Altair's objects validate themselves
    on every step, which costs 0.1 to 0.4 s a chart. Layers: a min/max band where a curve was bucketed,
    the line (faint under a smoothed line when smoothing), and invisible points that carry the tooltip.
    `labels`: the colour domain, when `series` holds only some of the runs a page draws; `colours`: theirs.
    """
    options = options or ChartOptions()
    points, hidden = _points(series, key, run_names, options)
    domain = robust_range(points, options.log_scale) if options.ignore_outliers else None
    drawn = set(points["run"].unique())  # a run that never logged this key is not in its legend
    colour = colour_by("run", labels if labels is not None else run_labels(series, run_names), drawn=drawn, colours=colours)
    scale = _y_scale(options.log_scale, domain)
    x = _x(options.x, _span_seconds(points) if options.x == "wall_time" else None)

    def layer(mark: dict, y: str, opacity: float | None, **extra) -> dict:
        encoding = {"x": x, "color": colour, "y": {"field": y, "type": "quantitative", "title": key, "scale": scale}}
        if opacity is not None:
            encoding["opacity"] = {"condition": {"param": "pick", "value": opacity}, "value": opacity * FADED}
        return {"mark": {"clip": True, **mark}, "encoding": {**encoding, **extra}}

    layers = []
    if points["low"].is_not_null().any():
        layers.append(layer({"type": "area", "opacity": BAND_OPACITY}, "low", BAND_OPACITY, y2={"field": "high"}))
    line = layer({"type": "line"}, "value", RAW_OPACITY if options.smoothing else 1.0)
    layers.append({**line, "params": [_PICK, _ZOOM]})
    if options.smoothing:
        layers.append(layer({"type": "line"}, "smoothed", 1.0))
    shown = "smoothed" if options.smoothing else "value"
    lone = sorted(points.group_by("run").len().filter(pl.col("len") == 1)["run"])  # one point: no line to draw
    if lone:
        dots = layer({"type": "circle", "size": 60, "opacity": 1}, shown, 1.0)
        layers.append({**dots, "transform": [{"filter": {"field": "run", "oneOf": lone}}]})
    layers.append(layer({"type": "circle", "size": 60, "opacity": 0}, shown, None, tooltip=_tooltip(options)))
    return {
        "title": _title(key, points.is_empty(), hidden, _outside(points, domain), _off_scale(points, domain)),
        "width": "container",
        "height": PANEL_HEIGHT,
        "data": {"name": DATASET},
        "datasets": {DATASET: compact(points.drop("run_id"))},
        "layer": layers,
    }


def metric_panels(
    series: pl.DataFrame,
    keys: list[str],
    *,
    run_names: dict[int, str] | None = None,
    options: ChartOptions | None = None,
    family: list[int] | None = None,
) -> list[dict]:
    """One full-width chart per key, in the order asked; every run has one colour across them, the one its
    experiment's charts give it where `family` (the experiment's run IDs) is given. The frame is split by key once,
    rather than filtered again for each panel."""
    options = options or ChartOptions()
    labels = run_labels(series, run_names)
    colours = family_colours(series["run_id"].unique().to_list(), family) if family else None
    if options.x == "elapsed":
        series = with_elapsed(series)  # from each run's first point of any key
    by_key = series.partition_by("key", as_dict=True, maintain_order=True)
    empty = series.clear()
    return [
        metric_spec(by_key.get((key,), empty), key, run_names=run_names, options=options, labels=labels, colours=colours)
        for key in keys
    ]


def with_elapsed(series: pl.DataFrame) -> pl.DataFrame:
    """Seconds since the run's first point of any key, as `elapsed`."""
    start = pl.col("wall_time").min().over("run_id")
    return series.with_columns(elapsed=(pl.col("wall_time") - start).dt.total_microseconds() / 1e6)


def compact(frame: pl.DataFrame) -> pl.DataFrame:
    """Fewer bytes per row on the wire: labels dictionary-encoded, 32-bit numbers (what a chart can show)."""
    narrow = {name: pl.Float32 for name, dtype in frame.schema.items() if dtype.is_float()}
    narrow.update({name: pl.Categorical for name, dtype in frame.schema.items() if dtype == pl.String})
    narrow.update({name: pl.Int32 for name in ("step",) if name in frame.columns})
    return frame.cast(narrow)


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


def _points(series: pl.DataFrame, key: str, run_names: dict[int, str] | None, options: ChartOptions) -> tuple[pl.DataFrame, int]:
    """The key's points ready to draw (only the x column chosen travels), and how many a log scale hid.

    Relative time counts from the run's first point of any key; non-finite values become null (no NaN in JSON).
    """
    labels = {run_id: run_label(run_id, run_names) for run_id in series["run_id"].unique()}
    extra = [] if options.x == "step" else [options.x]
    if options.x == "elapsed" and "elapsed" not in series.columns:
        series = with_elapsed(series)
    points = (
        series.lazy()
        .filter(pl.col("key") == key)
        .with_columns(
            value=pl.when(pl.col("value").is_finite()).then(pl.col("value")),
            run=pl.col("run_id").replace_strict(labels, return_dtype=pl.String),
        )
        .select("run_id", "run", "step", *extra, "value")
    )
    hidden = 0
    if options.log_scale:
        drawn = points.collect()
        hidden = drawn.filter(pl.col("value") <= 0).height
        points = drawn.lazy().filter(pl.col("value") > 0)
    points = points.collect()
    if options.buckets is not None:
        points = bucketed(points, options.buckets)
    else:
        points = points.with_columns(low=pl.lit(None, pl.Float64), high=pl.lit(None, pl.Float64))
    if options.smoothing:
        points = smooth(points.with_columns(key=pl.lit(key)), options.smoothing).drop("key")
    return points, hidden


def _outside(points: pl.DataFrame, domain: tuple[float, float] | None) -> int:
    if domain is None or points.is_empty():
        return 0
    values = _floats(points["value"])
    return int(np.count_nonzero((values < domain[0]) | (values > domain[1])))


def _off_scale(points: pl.DataFrame, domain: tuple[float, float] | None) -> list[str]:
    """Runs most of whose points lie beyond the range: a whole curve on another scale (a learning rate 500 times the
    others'), not a spike, looked missing from the panel."""
    if domain is None or points.is_empty():
        return []
    beyond = (pl.col("value") < domain[0]) | (pl.col("value") > domain[1])
    share = points.group_by("run", maintain_order=True).agg(beyond.mean().alias("share"))
    return share.filter(pl.col("share") > 0.5)["run"].to_list()


def _x(axis: str, span_seconds: float | None = None) -> dict:
    x = {"field": axis, "type": "temporal" if axis == "wall_time" else "quantitative", "title": X_AXES[axis]}
    if axis == "step":
        x["axis"] = {"format": "d"}  # whole steps, also when every point sits at one step ("200", not "200.000000")
    if axis == "wall_time":  # clock times: Vega's own labels for a run of seconds read ".900", ".400"
        x["axis"] = {"format": "%H:%M:%S" if (span_seconds or 0) < 86_400 else "%b %d %H:%M", "labelOverlap": True}
    return x


def _span_seconds(points: pl.DataFrame) -> float:
    if points.is_empty():
        return 0.0
    walls = points["wall_time"]
    return (walls.max() - walls.min()).total_seconds()


def _y_scale(log_scale: bool, domain: tuple[float, float] | None) -> dict:
    scale = {"type": "log"} if log_scale else {"zero": False}
    return {**scale, "domain": list(domain)} if domain else scale


def _tooltip(options: ChartOptions) -> list[dict]:
    tooltip = [
        {"field": "run", "type": "nominal", "title": "run"},
        {"field": "step", "type": "quantitative", "title": "step"},
        {"field": "value", "type": "quantitative", "title": "value", "format": ".4g"},
    ]
    if options.x == "elapsed":
        tooltip.append({"field": "elapsed", "type": "quantitative", "title": "relative time (s)", "format": ".1f"})
    if options.x == "wall_time":
        tooltip.append({"field": "wall_time", "type": "temporal", "title": "wall time", "format": "%Y-%m-%d %H:%M:%S"})
    if options.smoothing:
        tooltip.append({"field": "smoothed", "type": "quantitative", "title": "smoothed", "format": ".4g"})
    return tooltip


def _title(key: str, empty: bool, hidden: int, outside: int, off_scale: list[str] = ()) -> dict:
    text = f"{key}: no points yet" if empty else key
    notes = []
    if hidden:
        notes.append(f"{hidden} point{'s' if hidden != 1 else ''} ≤ 0 hidden on the log scale")
    if off_scale:
        runs = ", ".join(off_scale)
        notes.append(f"{runs} {'is' if len(off_scale) == 1 else 'are'} mostly off the scale (show everything to see {'it' if len(off_scale) == 1 else 'them'})")
    elif outside:
        notes.append(f"{outside} outlier point{'s' if outside != 1 else ''} beyond the range (show everything to see them)")
    return {"text": text, "subtitle": " · ".join(notes)} if notes else {"text": text}


# -- groups of runs: the mean curve with a band of ± one standard deviation --------------------------
def group_series(series: pl.DataFrame, key: str, groups: dict[int, str], buckets: int | None = None) -> pl.DataFrame:
    """Per group and step: `mean`, `std` (sample, ddof=1; null for one run), `runs` and the band's `low`/`high`.

    Runs are lined up by step. When the key has more distinct steps than `buckets`, steps are first binned
    the same way for every run (each run's mean per bin), so curves whose stored points were downsampled to
    different steps still average together. Runs not in `groups` are left out.
    """
    points = series.filter((pl.col("key") == key) & pl.col("value").is_finite() & pl.col("run_id").is_in(list(groups))).select(
        "run_id", "step", "value"
    )
    if buckets is not None and points["step"].n_unique() > buckets:
        low, high = points["step"].min(), points["step"].max()
        width = (high - low + 1) / buckets
        binned = (low + ((pl.col("step") - low) / width).floor() * width).ceil().cast(pl.Int64)
        points = points.with_columns(step=binned).group_by("run_id", "step").agg(pl.col("value").mean())
    labelled = points.with_columns(group=pl.col("run_id").replace_strict(groups, return_dtype=pl.String))
    stats = labelled.group_by("group", "step").agg(
        mean=pl.col("value").mean(), std=pl.col("value").std(ddof=1), runs=pl.len().cast(pl.Int64)
    )
    band = pl.col("std").fill_null(0.0)
    return stats.with_columns(low=pl.col("mean") - band, high=pl.col("mean") + band).sort("group", "step")


def group_spec(series: pl.DataFrame, key: str, groups: dict[int, str], *, options: ChartOptions | None = None) -> dict:
    """One metric's curves by group: each group's mean as a line over a band of ± one sample std across its runs."""
    options = options or ChartOptions()
    stats = group_series(series, key, groups, options.buckets)
    if options.log_scale:
        stats = stats.filter(pl.col("mean") > 0).with_columns(low=pl.when(pl.col("low") > 0).then(pl.col("low")))
    colour = colour_by("group", sorted(set(groups.values())), label_limit=300)
    domain = robust_range(stats.select(run_id="group", value="mean"), options.log_scale) if options.ignore_outliers else None
    scale = _y_scale(options.log_scale, domain)
    x = {"field": "step", "type": "quantitative", "title": "step"}
    y = {"field": "mean", "type": "quantitative", "title": f"{key} (mean ± std)", "scale": scale}
    tooltip = [
        {"field": "group", "type": "nominal"},
        {"field": "step", "type": "quantitative"},
        {"field": "mean", "type": "quantitative", "format": ".4g"},
        {"field": "std", "type": "quantitative", "format": ".3g"},
        {"field": "runs", "type": "quantitative"},
    ]
    opacity = {"condition": {"param": "pick", "value": 1.0}, "value": FADED}
    return {
        "title": {"text": f"{key}: no points yet" if stats.is_empty() else key, "subtitle": "mean of each group, band: ± 1 std"},
        "width": "container",
        "height": PANEL_HEIGHT,
        "data": {"name": DATASET},
        "datasets": {DATASET: compact(stats)},
        "layer": [
            {
                "mark": {"type": "area", "opacity": BAND_OPACITY, "clip": True},
                "encoding": {"x": x, "y": {**y, "field": "low"}, "y2": {"field": "high"}, "color": colour},
            },
            {
                "mark": {"type": "line", "clip": True},
                "encoding": {"x": x, "y": y, "color": colour, "opacity": opacity},
                "params": [{**_PICK, "select": {"type": "point", "fields": ["group"]}}, _ZOOM],
            },
            {
                "mark": {"type": "circle", "size": 60, "opacity": 0, "clip": True},
                "encoding": {"x": x, "y": y, "color": colour, "tooltip": tooltip},
            },
        ],
    }


def group_panels(
    series: pl.DataFrame, keys: list[str], groups: dict[int, str], *, options: ChartOptions | None = None
) -> list[dict]:
    """One group chart per key, in the order asked; each group keeps its colour across them."""
    return [group_spec(series, key, groups, options=options) for key in keys]
