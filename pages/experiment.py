"""One experiment: status, best metrics, its runs, new runs (with a learning-rate sweep), curves."""

import streamlit as st

from core import charts
from core.errors import ValidationError
from core.filters import metric_column
from core.presenters import (
    best_primary_label,
    format_value,
    metric_keys,
    parse_run_filters,
    parse_sweep,
    run_label,
    runs_frame,
)
from jobs.tasks import start_run
from ui.common import friendly_errors, plain, query_id, status_badge, store, through_app, with_status_colours
from ui.config_form import config_inputs, trainer_choice

through_app()


def pick_experiment() -> None:
    st.title("Experiment")
    recent = store().list_experiments(page_size=100).items
    if not recent:
        st.info("No experiments yet: create one on the Experiments page.")
        return
    chosen = st.selectbox("Open an experiment", recent, index=None, format_func=lambda e: f"{e.name} (#{e.id})", key="pick")
    if chosen is not None:
        st.query_params["experiment"] = str(chosen.id)
        st.rerun()


def header(experiment) -> None:
    st.title(plain(experiment.name))
    status_badge(experiment.status)
    if experiment.is_deleted:
        st.warning("This experiment is deleted. Its history is kept; restore it on the Experiments page to add runs.")
    st.caption(
        f"Dataset `{experiment.dataset}` · created {experiment.created_at:%Y-%m-%d %H:%M} · updated {experiment.updated_at:%Y-%m-%d %H:%M}"
    )
    if experiment.description:
        st.text(experiment.description)
    if experiment.status == "failed" and experiment.last_error:
        st.error(f"Last error: {experiment.last_error}")
    if experiment.best_metrics:
        cells = st.columns(min(len(experiment.best_metrics), 4))
        for index, best in enumerate(experiment.best_metrics):
            cells[index % len(cells)].metric(
                f"best {best.key}", format_value(best.value), help=f"run #{best.run_id}, {best.direction.value} is better"
            )
    st.caption(f"Primary metric: {experiment.primary_metric} (best {best_primary_label(experiment)})")


def filtered_runs(detail) -> list:
    """The runs in the order and subset the filter and sort widgets ask for (core's runs_table decides)."""
    keys = metric_keys(detail.runs)
    left, middle, right = st.columns([5, 3, 2], vertical_alignment="bottom")
    text = left.text_input("Filter by metrics", placeholder="e.g. accuracy > 0.5, eval_loss < 0.3", key="run_filter")
    order_by = middle.selectbox("Sort by", ["newest first", *keys], key="run_sort")
    descending = right.toggle("Highest first", key="run_descending", disabled=order_by == "newest first")
    try:
        table = store().runs_table(
            detail.experiment.id,
            where=parse_run_filters(text),
            order_by=None if order_by == "newest first" else metric_column(order_by),
            descending=descending,
        )
    except ValidationError as error:
        st.error(str(error))
        return detail.runs
    by_id = {run.id: run for run in detail.runs}
    return [by_id[run_id] for run_id in table["id"].to_list() if run_id in by_id]


def runs_section(detail, loss) -> None:
    st.subheader(f"Runs ({len(detail.runs)})")
    if not detail.runs:
        st.info("No runs yet: start one above.")
        return
    shown = filtered_runs(detail)
    if len(shown) < len(detail.runs):
        st.caption(f"{len(shown)} of {len(detail.runs)} runs match.")
    run_ids = [run.id for run in detail.runs]
    frame = runs_frame(shown, charts.sparklines(loss, "loss"))
    table = st.dataframe(
        with_status_colours(frame),
        hide_index=True,
        on_select="rerun",
        selection_mode="multi-row",
        key="runs_table",
        column_order=[column for column in frame.columns if column != "id"],
        column_config={
            "open": st.column_config.LinkColumn("", display_text="Open", width="small"),
            "adapter": st.column_config.LinkColumn("adapter", display_text=r"#(v\d+)$"),
            "loss curve": st.column_config.LineChartColumn("loss curve"),
            "started": st.column_config.DatetimeColumn("started", format="MM-DD HH:mm:ss"),
        },
    )
    selected = [shown[row].id for row in table.selection.rows if row < len(shown)] if table is not None else []
    by_id = {run.id: run for run in detail.runs}
    chosen = st.multiselect(
        "Runs to compare", run_ids, default=selected, format_func=lambda i: run_label(by_id[i]), key="compare_pick"
    )
    if st.button("Compare selected", disabled=len(chosen) < 2, key="compare", icon=":material/compare_arrows:"):
        st.switch_page("pages/compare.py", query_params={"runs": ",".join(map(str, chosen))})
    if detail.aggregates:
        with st.expander("Aggregated metrics across runs"):
            st.dataframe([a.model_dump() for a in detail.aggregates], hide_index=True)


def curves(detail, series) -> None:
    if not detail.runs:
        return
    key = detail.experiment.primary_metric
    names = {run.id: run.name for run in detail.runs}
    st.subheader("Curves")
    st.altair_chart(charts.metric_chart(series, key, run_names=names), width="stretch")


def new_run_form(experiment) -> None:
    if experiment.is_deleted:
        return
    with st.expander("New run", icon=":material/play_arrow:"):
        trainer = trainer_choice()
        with st.form("new_run"):
            values = config_inputs(trainer)
            sweep = st.text_input(
                "Learning-rate sweep (optional)", placeholder="e.g. 1e-3, 3e-3, 1e-2: one run per value", key="sweep"
            )
            submitted = st.form_submit_button("Start", type="primary")
        if submitted:
            try:
                rates = parse_sweep(sweep) if sweep.strip() else [values["learning_rate"]]
                started = [start_run(store(), experiment.id, {**values, "learning_rate": rate}) for rate in rates]
            except ValidationError as error:
                for field, message in (error.field_errors or {"input": str(error)}).items():
                    st.error(f"{field.replace('_', ' ')}: {message}")
            else:
                st.session_state.started = started
                st.rerun()
    if st.session_state.get("started"):
        st.success(f"Started run(s) {', '.join(f'#{r}' for r in st.session_state.started)}.")


with friendly_errors():
    experiment_id = query_id("experiment", "experiment")
    if experiment_id is None:
        pick_experiment()
    else:
        with store().reading():
            detail = store().get_experiment_detail(experiment_id)
            run_ids = [run.id for run in detail.runs]
            loss = store().get_metric_series(run_ids, ["loss"], max_points=60)
            primary = store().get_metric_series(run_ids, [detail.experiment.primary_metric], max_points=1000)
        header(detail.experiment)
        new_run_form(detail.experiment)
        runs_section(detail, loss)
        curves(detail, primary)
