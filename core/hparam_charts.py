"""Hyperparameter views as pure Vega-Lite specs: parallel coordinates (params -> a metric) and a param-vs-metric scatter.

Both read `core.groups.run_attributes` frames (id, name, params.*, metrics.*), highlight the runs in `selected`
and carry a point selection named `OPEN` on the run's id, so a page can open the run that was clicked.
"""

from collections.abc import Iterable

import polars as pl

from core.groups import short

OPEN = "open"  # the selection a click makes: {"open": [{"id": 12}]}
HIGHLIGHT = "#ff7f0e"
PLAIN = "#1f77b4"
LOG_SPAN = 100  # a positive numeric axis spanning this factor or more is drawn on a log scale
NOT_SET = -0.15  # where a run that lacks a param crosses that param's axis: below it, labelled "not set"
HEIGHT = 360
# SVG: each run's mark is an element of its own (crisp thin lines, and a browser test can click one run)
SVG = {"embedOptions": {"renderer": "svg"}}
_CLICK = {"name": OPEN, "select": {"type": "point", "fields": ["id"], "on": "click", "clear": "dblclick"}}


def parallel_coordinates_spec(frame: pl.DataFrame, params: list[str], metric: str, selected: Iterable[int] = ()) -> dict:
    """One line per run across an axis per param and the metric last, coloured by the metric.

    Each axis is scaled to 0..1 on its own (log for positive values spanning two decades or more, categories
    spaced evenly); its lowest and highest values (each category, for text) label it. A run lacking a param
    crosses that axis below it, at "not set" (a line drawn across as if it had a value would mislead). Runs
    lacking the metric are left out; selected runs are drawn thick, the others thin.
    """
    dims = [*params, metric]
    runs = frame.filter(pl.col(metric).is_not_null()) if metric in frame.columns else frame.clear()
    chosen = set(selected)
    lines, ticks = [], []
    for order, column in enumerate(dims):
        positions, labels = _axis(runs[column])
        if None in positions:
            positions, labels = [NOT_SET if p is None else p for p in positions], [*labels, (NOT_SET, "not set")]
        ticks += [{"dimension": short(column), "position": p, "label": text} for p, text in labels]
        lines += [
            {
                "id": run_id,
                "run": f"{name} (#{run_id})",
                "dimension": short(column),
                "order": order,
                "position": position,
                "value": "not set" if value is None else _shown(value),
                "metric": score,
                "selected": run_id in chosen,
            }
            for run_id, name, value, position, score in zip(
                runs["id"], runs["name"], runs[column], positions, runs[metric], strict=True
            )
        ]
    names = [short(column) for column in dims]
    x = {"field": "dimension", "type": "nominal", "sort": names, "title": None, "axis": {"orient": "top", "labelAngle": 0}}
    y = {"field": "position", "type": "quantitative", "scale": {"domain": [NOT_SET - 0.05, 1]}, "axis": None}
    emphasis = {"condition": {"test": "datum.selected", "value": 3.5}, "value": 1.5}
    return {
        "title": {"text": f"{', '.join(names[:-1])} → {names[-1]}", "subtitle": "click a line's point to open its run"},
        "width": "container",
        "height": HEIGHT,
        "usermeta": SVG,
        "datasets": {
            "lines": pl.DataFrame(lines, schema=_LINE_SCHEMA),
            "ticks": pl.DataFrame(ticks, schema=_TICK_SCHEMA),
            "axes": pl.DataFrame({"dimension": names, "low": [0.0] * len(names), "high": [1.0] * len(names)}),
        },
        "layer": [
            {
                "data": {"name": "axes"},
                "mark": {"type": "rule", "color": "#bbb"},
                "encoding": {"x": x, "y": {**y, "field": "low"}, "y2": {"field": "high"}},
            },
            {
                "data": {"name": "lines"},
                "mark": {"type": "line"},
                "encoding": {
                    "x": x,
                    "y": y,
                    "detail": {"field": "id", "type": "nominal"},
                    "order": {"field": "order", "type": "quantitative"},
                    "color": _metric_colour(metric),
                    "strokeWidth": emphasis,
                    "opacity": {"condition": {"test": "datum.selected", "value": 1.0}, "value": 0.55 if chosen else 0.8},
                },
            },
            {
                "data": {"name": "lines"},
                "mark": {"type": "circle", "size": 45, "cursor": "pointer"},
                "params": [_CLICK],
                "encoding": {
                    "x": x,
                    "y": y,
                    "color": _metric_colour(metric),
                    "tooltip": [
                        {"field": "run", "type": "nominal"},
                        {"field": "dimension", "type": "nominal", "title": "axis"},
                        {"field": "value", "type": "nominal"},
                        {"field": "metric", "type": "quantitative", "title": short(metric), "format": ".4g"},
                    ],
                },
            },
            {
                "data": {"name": "ticks"},
                "mark": {"type": "text", "align": "left", "dx": 8, "fontSize": 10, "color": "#555"},
                "encoding": {"x": x, "y": y, "text": {"field": "label", "type": "nominal"}},
            },
        ],
    }


def scatter_spec(frame: pl.DataFrame, param: str, metric: str, selected: Iterable[int] = ()) -> dict:
    """One point per run at (param, metric); text params get a category axis, wide positive ones a log axis.
    Selected runs are larger and orange; a click opens the run."""
    runs = frame.filter(pl.col(param).is_not_null() & pl.col(metric).is_not_null()).select(
        "id", run=pl.format("{} (#{})", "name", "id"), x=param, y=metric
    )
    runs = runs.with_columns(selected=pl.col("id").is_in(list(selected)))
    numeric = runs.schema["x"].is_numeric()
    x = {"field": "x", "type": "quantitative" if numeric else "nominal", "title": short(param)}
    if numeric:
        x["scale"] = {"type": "log"} if _log_scale(runs["x"]) else {"zero": False}
    return {
        "title": {"text": f"{short(metric)} by {short(param)}", "subtitle": "click a point to open its run"},
        "width": "container",
        "height": HEIGHT,
        "usermeta": SVG,
        "data": {"name": "runs"},
        "datasets": {"runs": runs},
        "mark": {"type": "point", "filled": True, "cursor": "pointer"},
        "params": [_CLICK],
        "encoding": {
            "x": x,
            "y": {"field": "y", "type": "quantitative", "title": short(metric), "scale": {"zero": False}},
            "color": {
                "field": "selected",
                "type": "nominal",
                "title": "selected",
                "scale": {"domain": [True, False], "range": [HIGHLIGHT, PLAIN]},
            },
            "size": {"condition": {"test": "datum.selected", "value": 220}, "value": 90},
            "tooltip": [
                {"field": "run", "type": "nominal"},
                {"field": "x", "type": "quantitative" if numeric else "nominal", "title": short(param)},
                {"field": "y", "type": "quantitative", "title": short(metric), "format": ".4g"},
            ],
        },
    }


def clicked_run(selection: dict | None) -> int | None:
    """The run a click on either view chose, from Streamlit's selection state; None when nothing was clicked."""
    points = (selection or {}).get(OPEN) or []
    ids = [point.get("id") for point in points if isinstance(point, dict)]
    return int(ids[0]) if ids and ids[0] is not None else None


def _axis(values: pl.Series) -> tuple[list[float | None], list[tuple[float, str]]]:
    """Each value's place on a 0..1 axis, and the labelled ticks of that axis."""
    present = values.drop_nulls()
    if present.is_empty():
        return [None] * values.len(), []
    if not values.dtype.is_numeric():
        categories = sorted(present.unique().to_list())
        step = 1 / (len(categories) - 1) if len(categories) > 1 else 0
        place = {category: (index * step if step else 0.5) for index, category in enumerate(categories)}
        return [place.get(value) for value in values], [(p, str(c)) for c, p in place.items()]
    scaled = values.cast(pl.Float64)
    if _log_scale(present):
        scaled = scaled.log10()
    low, high = scaled.min(), scaled.max()
    positions = [None if v is None else ((v - low) / (high - low) if high > low else 0.5) for v in scaled]
    lowest, highest = present.min(), present.max()
    ticks = [(0.5, _shown(lowest))] if high == low else [(0.0, _shown(lowest)), (1.0, _shown(highest))]
    return positions, ticks


def _log_scale(values: pl.Series) -> bool:
    present = values.drop_nulls()
    return (
        present.dtype.is_numeric() and not present.is_empty() and present.min() > 0 and present.max() / present.min() >= LOG_SPAN
    )


def _metric_colour(metric: str) -> dict:
    # The legend's labels to at most 4 significant digits: a diverged run's 2.5e169 showed as 2.4999999999999998e+169.
    return {
        "field": "metric",
        "type": "quantitative",
        "title": short(metric),
        "scale": {"scheme": "viridis"},
        "legend": {"format": ".4~g"},  # 4 digits, no trailing zeros: 0.5, not 0.5000
    }


def _shown(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


_LINE_SCHEMA = {
    "id": pl.Int64,
    "run": pl.String,
    "dimension": pl.String,
    "order": pl.Int64,
    "position": pl.Float64,
    "value": pl.String,
    "metric": pl.Float64,
    "selected": pl.Boolean,
}
_TICK_SCHEMA = {"dimension": pl.String, "position": pl.Float64, "label": pl.String}
