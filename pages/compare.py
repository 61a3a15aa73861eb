"""Compare runs side by side: final metrics with the best highlighted, config diff, overlaid curves. Live while runs are."""

import streamlit as st

from core.divergence import find_diverged
from core.presenters import (
    BEST_MARK,
    COMPARISON_LEAD,
    DIVERGED_MARK,
    chart_keys,
    compare_warnings,
    comparison_csv,
    comparison_table,
    config_diff_frame,
    disputed_note,
    parse_run_ids,
    plural,
    run_label,
    runs_overview,
)
from core.runs import adapters_of, found_and_missing
from core.samples import best_run
from core.status import any_active
from ui.charts import chart_options, draw_panels, family_of, page_series, pick_metrics
from ui.common import data_table, experiment_names, fresh, friendly_errors, live, plain, store, text_in_url, through_app
from ui.samples import compare_samples
from ui.try_it import try_box

through_app()

st.title("Compare runs")


def comparison_view(run_ids: list[int], comparison) -> bool:
    comparison = fresh(comparison, lambda: store().compare_runs(run_ids))
    warnings = st.container()
    if len(comparison.runs) == 1:
        warnings.info("One run alone: add another run ID above to compare it with.")
    names = experiment_names(comparison.runs)
    if len(names) > 1:
        warnings.info(
            f"These runs come from {len(names)} experiments: the best run per metric is picked across them, "
            "so check that they measure the same thing (the same dataset and eval)."
        )
        data_table(runs_overview(comparison.runs, names))
    if comparison.disputed:
        warnings.warning(plain(disputed_note(comparison.disputed)))
    final_metrics = st.container()  # above the config and curves, drawn once the diverged runs are known (below)

    st.subheader("Config")
    show_all = st.toggle("Show settings that are the same too", key="all_config")
    config = config_diff_frame(comparison, only_differences=not show_all)
    if config.height:
        data_table(config, column_config=capped(config.columns[1:]))  # one column a run, after the setting
    elif len(comparison.runs) == 1:
        st.caption("One run: nothing to tell apart. Turn on the switch above to see its settings.")
    else:
        st.caption("All runs share the same config.")

    st.subheader("Curves")
    keys = [row.key for row in comparison.metrics]
    # System metrics one click away, not drawn by default; one subject, so the choice stays as the runs compared change.
    chosen = pick_metrics(keys, chart_keys(keys), "comparison", key="compare_metrics") if keys else []
    options = chart_options(len(run_ids), len(chosen)) if keys else None
    series = page_series(run_ids, chosen)
    diverged = find_diverged(store(), comparison.runs)  # one verdict per run, whatever this page charts
    with final_metrics:
        final_metrics_section(comparison, diverged)
    if diverged:
        labels = ", ".join(run_label(run) for run in comparison.runs if run.id in diverged)
        warnings.warning(f"Diverged ({plural(len(diverged), 'run')}): {plain(labels)}.")
    if not keys:
        st.caption("No metrics logged yet.")
    elif not chosen:
        st.caption("Choose at least one metric to chart.")
    else:
        run_names = {run.id: run.name for run in comparison.runs}
        draw_panels(series, chosen, run_names, options, family=family_of(comparison.runs))  # colours as on their experiment
    samples_section(comparison)
    return any_active(comparison.runs)


LONG_HEADER = 28  # characters: a run's column headed by a longer name is capped


def capped(run_columns: list[str], align: str | None = None) -> dict:
    """Columns headed by a long run name at a medium width: one such name pushed the other runs, and their stars, off
    the page. Short ones keep their own width, so six runs still fit."""
    return {name: st.column_config.TextColumn(name, width="medium", alignment=align) for name in run_columns if len(name) > LONG_HEADER}


def final_metrics_section(comparison, diverged: set[int]) -> None:
    table = comparison_table(comparison, diverged)
    st.subheader("Final metrics")
    st.caption(
        f"{BEST_MARK} marks the best run per metric among those completed or still going (a failed or cancelled "
        "run's last value is no result: see each run's status on top); the arrow says which way is better."
        + (f" {DIVERGED_MARK}: the run diverged (see above)." if diverged else "")
    )
    long_best = (table["best run"].str.len_chars().max() or 0) > LONG_HEADER
    st.dataframe(
        table.to_arrow(),
        hide_index=True,
        column_config={
            **{name: st.column_config.TextColumn(name, alignment="right") for name in table.columns if name not in COMPARISON_LEAD},
            **capped([name for name in table.columns if name not in COMPARISON_LEAD], align="right"),
            **({"best run": st.column_config.TextColumn("best run", width="medium")} if long_best else {}),
        },
    )
    st.download_button(
        "Download CSV", comparison_csv(comparison), file_name="tunedeck-comparison.csv", mime="text/csv", key="csv"
    )


def samples_section(comparison) -> None:
    primary = store().get_experiment(comparison.runs[0].experiment_id).primary_metric
    compare_samples(store(), comparison.runs, best_run(comparison, primary), primary)
    adapters = adapters_of(store(), comparison.runs)
    try_box({run_label(run): adapters[run.id] for run in comparison.runs if run.id in adapters}, key="try_compare")


with friendly_errors():
    raw = text_in_url("Run IDs, comma separated", "runs", placeholder="e.g. 12, 13, 14")
    parsed, ignored = parse_run_ids(raw)
    run_ids, missing = found_and_missing(store(), parsed)
    for warning in compare_warnings(ignored, missing, found_any=bool(run_ids)):
        st.warning(plain(warning))  # what was typed, shown as typed
    if len(run_ids) < 1:
        st.info("Choose runs on an experiment page and press “Compare selected”, or type run IDs above.")
    else:
        comparison = store().compare_runs(run_ids)
        active = any_active(comparison.runs)
        live(active, lambda: comparison_view(run_ids, comparison))
