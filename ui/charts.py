"""The chart controls every page with curves shares, and the full-width panels they draw."""

import polars as pl
import streamlit as st

from core import charts
from core.divergence import LOSS_KEYS, LOSS_POINTS
from core.presenters import chart_keys
from ui.common import store

X_LABELS = {"step": "step", "wall_time": "wall time", "elapsed": "relative time"}


def pick_metrics(keys: list[str], defaults: list[str], subject: str, key: str) -> list[str]:
    """Which panels, in which order: remembered in the URL (?metrics=..., the parameter named `key`) so a link reopens
    the same view. Each page names its own parameter: Streamlit drops a URL parameter that a widget of another page
    is bound to, so while the run page's picker was bound to `metrics` too, Back from a run (after a Forward to it)
    showed the experiment on its default panels. `subject`: what the page shows ("experiment 7"), so that another one
    starts from its own URL."""
    _from_this_subjects_url(key, subject)
    default = charts.default_panels(chart_keys(keys), defaults)  # system metrics: not unless asked, even if alone
    return st.multiselect(
        "Metrics",
        keys,
        default=default,
        key=key,
        bind="query-params",
        placeholder="Choose the metrics to chart",
        help="One panel per metric, in the order chosen.",
    )


def _from_this_subjects_url(key: str, subject: str) -> None:
    """A picker starts from its page's URL when the page shows another subject. Streamlit keeps a URL-bound widget's
    value after it is gone and gives it to the next widget with that key: experiment B opened from the list after A
    showed eval_loss alone opened on eval_loss alone, with `&metrics=eval_loss` written into its address. The same
    subject shown again (this tab's experiment 7, reopened) keeps the panels last chosen for it."""
    owner = f"_{key}_subject"
    if st.session_state.get(owner, subject) != subject and key in st.session_state:
        del st.session_state[key]
    st.session_state[owner] = subject


def chart_options(runs: int, panels: int) -> charts.ChartOptions:
    """Smoothing, log scale, outliers and x axis from the widgets; buckets from the page's point budget."""
    left, middle, right = st.columns([3, 4, 3], vertical_alignment="bottom")
    smoothing = left.slider("Smoothing", 0.0, 0.99, 0.0, 0.01, key="smoothing")
    log_scale = middle.toggle("Log scale", key="log_scale")
    show_all = middle.toggle(
        "Show outliers", key="show_outliers", help="Off: the y range fits the bulk of the runs, ignoring a diverged run's spike."
    )
    x = right.segmented_control("X axis", list(X_LABELS), default="step", format_func=X_LABELS.get, key="x_axis") or "step"
    buckets = charts.points_per_curve(runs, panels)
    return charts.ChartOptions(smoothing=smoothing, log_scale=log_scale, x=x, ignore_outliers=not show_all, buckets=buckets)


def draw_panels(
    series: pl.DataFrame, keys: list[str], run_names: dict[int, str], options: charts.ChartOptions, family: list[int] | None = None
) -> None:
    """`family`: the run IDs of the experiment the runs are from, whose places give each run its colour on every page."""
    for chart in charts.metric_panels(series, keys, run_names=run_names, options=options, family=family):
        st.vega_lite_chart(spec=chart, width="stretch")


def family_of(runs: list) -> list[int] | None:
    """The run IDs of the one experiment these runs are from, for their colours (`draw_panels`); None for runs of
    several experiments, which have no one page's colours to keep."""
    experiments = {run.experiment_id for run in runs}
    return [run.id for run in store().list_runs(experiments.pop())] if len(experiments) == 1 else None


def store_points(runs: int, panels: int) -> int:
    """max_points to ask the store for: twice the buckets, as it keeps each bucket's lowest and highest point."""
    return 2 * charts.points_per_curve(runs, panels)


def page_series(run_ids: list[int], chosen: list[str]) -> pl.DataFrame:
    """A page's points in one read: the chosen curves, and the loss its sparklines need (read apart, the loss cost a
    second scan: 120 ms for 200 runs x 10,000 steps). The diverged check reads its own, at one resolution for every
    page (`core.divergence.find_diverged`: 33 ms for those runs on a DuckDBStore in one process, from their curve
    overviews; medians of 7 calls, 2026-12-02)."""
    keys = list(dict.fromkeys([*LOSS_KEYS, *chosen]))
    return store().get_metric_series(run_ids, keys, max_points=max(LOSS_POINTS, store_points(len(run_ids), len(chosen))))
