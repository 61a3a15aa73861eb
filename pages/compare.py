"""Compare runs side by side: final metrics with the best highlighted, config diff, overlaid curves."""

import streamlit as st

from core import charts
from core.presenters import chart_keys, comparison_csv, comparison_metrics_frame, config_diff_frame, format_value, parse_run_ids
from ui.common import friendly_errors, store, through_app

through_app()

BEST_STYLE = "background-color: #dcfce7; font-weight: 600"

st.title("Compare runs")


def highlighted(values, best):
    """Green cells where a run is best for that metric."""
    flags = best.to_pandas()
    runs = [column for column in values.columns if column not in ("metric", "better")]
    style = values.to_pandas().style.apply(
        lambda column: [BEST_STYLE if flag else "" for flag in flags[column.name]], axis=0, subset=runs
    )
    return style.format(format_value, subset=runs)


with friendly_errors():
    raw = st.text_input("Run IDs, comma separated", key="runs", bind="query-params", placeholder="e.g. 12, 13, 14")
    run_ids = parse_run_ids(raw)
    if len(run_ids) < 1:
        st.info("Choose runs on an experiment page and press “Compare selected”, or type run IDs above.")
    else:
        with store().reading():
            comparison = store().compare_runs(run_ids)
            keys = chart_keys([row.key for row in comparison.metrics])
            series = store().get_metric_series(run_ids, keys, max_points=1000)
        values, best = comparison_metrics_frame(comparison)
        st.subheader("Final metrics")
        st.caption("The best run per metric is highlighted; the arrow says which way is better.")
        st.dataframe(highlighted(values, best), hide_index=True)
        st.download_button(
            "Download CSV", comparison_csv(comparison), file_name="tunedeck-comparison.csv", mime="text/csv", key="csv"
        )

        st.subheader("Config")
        show_all = st.toggle("Show settings that are the same too", key="all_config")
        config = config_diff_frame(comparison, only_differences=not show_all)
        if config.height:
            st.dataframe(config, hide_index=True)
        else:
            st.caption("All runs share the same config.")

        st.subheader("Curves")
        names = {run.id: run.name for run in comparison.runs}
        smoothing = st.slider("Smoothing", 0.0, 0.99, 0.0, 0.01, key="smoothing")
        st.altair_chart(charts.overlay_charts(series, keys, run_names=names, smoothing=smoothing), width="stretch")
