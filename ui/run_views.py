"""The experiment page's views over many runs: groups over seeds (table and curves) and hyperparameter charts."""

import polars as pl
import streamlit as st

from core import charts
from core.groups import default_group_keys, group_labels, group_runs, metric_columns, param_columns, run_attributes, short
from core.presenters import groups_frame
from core.system_metrics import is_system_metric


def attributes(detail) -> pl.DataFrame:
    """The runs with their params and last metric values, system metrics left out."""
    frame = run_attributes(detail.runs)
    return frame.drop([column for column in metric_columns(frame) if is_system_metric(short(column))])


def groups_section(frame: pl.DataFrame) -> None:
    """Runs grouped by the params picked (all that vary but the seed, at first): mean ± std of each metric."""
    params = param_columns(frame)
    if frame.height < 2 or not params:
        return
    st.subheader("Groups")
    by = st.multiselect(
        "Group by",
        params,
        default=default_group_keys(frame),
        format_func=short,
        key="group_by",
        help="Runs that share these params form a group: leave the seed out to average over seeds. "
        "Each metric shows its mean ± sample std (ddof=1) over the group's last values.",
    )
    metrics = metric_columns(frame)
    grouped = group_runs(frame, by, metrics)
    st.caption(f"{grouped.height} group{'s' if grouped.height != 1 else ''} of {frame.height} runs.")
    st.dataframe(groups_frame(grouped, by, metrics), hide_index=True, key="groups_table")


def group_of_each_run(frame: pl.DataFrame) -> dict[int, str]:
    """The group each run is in, by the Group by picker (shared with the curves)."""
    by = [column for column in st.session_state.get("group_by", default_group_keys(frame)) if column in frame.columns]
    return group_labels(frame, by)


def draw_group_panels(series: pl.DataFrame, keys: list[str], groups: dict[int, str], options: charts.ChartOptions) -> None:
    for chart in charts.group_panels(series, keys, groups, options=options):
        st.vega_lite_chart(spec=chart, width="stretch")
