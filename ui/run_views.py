"""The experiment page's views over many runs: groups over seeds (table and curves) and hyperparameter charts."""

import polars as pl
import streamlit as st

from core import charts
from core.groups import (
    METRIC,
    chosen_params,
    default_group_keys,
    group_labels,
    group_runs,
    metric_columns,
    param_columns,
    run_attributes,
    short,
    tag_columns,
    varying_params,
)
from core.hparam_charts import OPEN, clicked_run, parallel_coordinates_spec, scatter_spec
from core.presenters import groups_frame, plural
from core.system_metrics import is_system_metric
from ui.common import TABLE_WIDTH, fitting_widths, leave_for


def attributes(detail) -> pl.DataFrame:
    """The runs with their params and last metric values, system metrics left out."""
    frame = run_attributes(detail.runs)
    return frame.drop([column for column in metric_columns(frame) if is_system_metric(short(column))])


def groups_section(frame: pl.DataFrame) -> None:
    """Runs grouped by the params picked (all that vary but the seed, at first): mean ± std of each metric."""
    params = param_columns(frame) + tag_columns(frame)
    if frame.height < 2 or not params:
        return
    st.subheader("Groups")
    follow_default("group_by", params, default_group_keys(frame))
    by = st.multiselect(
        "Group by",
        params,
        format_func=short,
        key="group_by",
        help="Runs that share these params (or tags) form a group: leave the seed out to average over seeds. "
        "Each metric shows its mean ± sample std (ddof=1) over the group's last values.",
    )
    metrics = metric_columns(frame)
    grouped = group_runs(frame, by, metrics)
    st.caption(f"{plural(frame.height, 'run')} in {plural(grouped.height, 'group')}.")  # "3 groups of 3 runs" read as 9
    table = groups_frame(grouped, by, metrics)
    values = [column for column in table.columns if column != "runs"]
    numbers = table.columns[len(by) + 1 :]  # the metrics' "mean ± std", right-aligned as numbers are
    widths = fitting_widths(table, values, TABLE_WIDTH - 60)  # every value whole at 1440 px ("0.0355 ± 0.01" was cut)
    config = {name: st.column_config.TextColumn(name, width=widths[name], alignment="right" if name in numbers else None) for name in values}
    st.dataframe(table, hide_index=True, key="groups_table", column_config=config)


def follow_default(key: str, options: list[str], default: list[str]) -> None:
    """A picker's choice follows its default (the params that vary) until the user changes it. Streamlit keeps a keyed
    widget's first value, so runs started after the page opened, varying a new param, were averaged together."""
    remembered = f"{key}:default"
    current = st.session_state.get(key)
    if current is None or current == st.session_state.get(remembered):
        st.session_state[key] = default
    else:
        st.session_state[key] = [value for value in current if value in options]
    st.session_state[remembered] = default


def group_of_each_run(frame: pl.DataFrame) -> dict[int, str]:
    """The group each run is in, by the Group by picker (shared with the curves)."""
    by = [column for column in st.session_state.get("group_by", default_group_keys(frame)) if column in frame.columns]
    return group_labels(frame, by)


def draw_group_panels(series: pl.DataFrame, keys: list[str], groups: dict[int, str], options: charts.ChartOptions) -> None:
    for chart in charts.group_panels(series, keys, groups, options=options):
        st.vega_lite_chart(spec=chart, width="stretch")


VIEWS = ("Parallel coordinates", "Scatter")
MAX_AXES = 6  # parallel coordinates start with this many params; more can be added


def hyperparameter_views(frame: pl.DataFrame, primary_metric: str, selected: list[int]) -> None:
    """Parallel coordinates (params -> a metric) or a param-vs-metric scatter; the runs ticked to compare are
    highlighted, and clicking a run's mark opens it."""
    params, metrics = varying_params(frame), metric_columns(frame)
    if frame.height < 2 or not params or not metrics:
        return
    st.subheader("Hyperparameters")
    left, middle, right = st.columns([3, 4, 3], vertical_alignment="bottom")
    view = left.segmented_control("View", VIEWS, default=VIEWS[0], key="hp_view") or VIEWS[0]
    preferred = METRIC + primary_metric
    metric = right.selectbox(
        "Metric", metrics, index=metrics.index(preferred) if preferred in metrics else 0, format_func=short, key="hp_metric"
    )
    if view == VIEWS[0]:
        follow_default("hp_params", params, chosen_params(frame)[:MAX_AXES])
        chosen = middle.multiselect("Params", params, format_func=short, key="hp_params")
        if not chosen:
            st.caption("Choose at least one param to draw.")
            return
        spec = parallel_coordinates_spec(frame, chosen, metric, selected)
    else:
        param = middle.selectbox("Param", params, format_func=short, key="hp_param")
        spec = scatter_spec(frame, param, metric, selected)
    if selected:
        st.caption("Runs ticked to compare are highlighted.")
    event = st.vega_lite_chart(
        spec=spec,
        width="stretch",
        on_select="rerun",
        selection_mode=OPEN,
        key=f"hp_chart_{'scatter' if view == VIEWS[1] else 'parallel'}",
    )
    run_id = clicked_run(event.selection if event is not None else None)
    if run_id is not None:
        leave_for("pages/run.py", {"run": str(run_id)})
