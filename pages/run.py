"""One run: status, timings, config, live metric charts (system metrics on request), log tail, error, cancel, resume, adapter."""

import streamlit as st

from core import charts
from core.artifacts import checkpoints_of, last_checkpoint
from core.logs import read_log
from core.presenters import chart_keys, format_duration
from core.runs import resume_config
from core.status import RunStatus
from jobs.tasks import cancel_run, start_run
from ui.common import friendly_errors, plain, query_id, settings, status_badge, store, through_app

through_app()

REFRESH_SECONDS = 2


def pick_run() -> None:
    st.title("Run")
    st.info("Open a run from an experiment's run table, or follow a link like /run?run=12.")


def summary(run, experiment) -> None:
    st.title(plain(f"{run.name} (#{run.id})"))
    status_badge(run.status)
    st.page_link(
        "pages/experiment.py",
        label=f"Experiment: {experiment.name}",
        query_params={"experiment": experiment.id},
        icon=":material/arrow_back:",
    )
    cells = st.columns(4)
    cells[0].metric("duration", format_duration(run.started_at, run.ended_at, now=run.heartbeat_at))
    cells[1].metric("attempt", run.attempt)
    cells[2].metric("started", f"{run.started_at:%H:%M:%S}" if run.started_at else "–")
    cells[3].metric("worker", run.worker or "–")
    if run.adapter:
        st.page_link(
            "pages/adapters.py",
            label=f"Adapter {run.adapter.name} v{run.adapter.version}",
            query_params={"adapter": run.adapter.id},
            icon=":material/inventory_2:",
        )
    if run.error:
        box = st.error if run.status == "failed" else st.info
        box(run.error)
        if run.traceback:
            with st.expander("Traceback"):
                st.code(run.traceback, language="text")
    if not run.status.is_terminal and st.button("Cancel run", key="cancel", icon=":material/stop:"):
        cancel_run(store(), run.id)
        st.rerun()
    resumable = run.status in (RunStatus.FAILED, RunStatus.CANCELLED) and last_checkpoint(
        checkpoints_of(settings().checkpoints_dir, run.id)
    )
    if resumable and st.button("Resume from its last checkpoint", key="resume", icon=":material/replay:"):
        resumed = start_run(store(), run.experiment_id, resume_config(run))
        st.switch_page("pages/run.py", query_params={"run": resumed})


def charts_section(run, series) -> None:
    left, middle, right = st.columns(3)
    smoothing = left.slider("Smoothing", 0.0, 0.99, 0.0, 0.01, key="smoothing")
    log_scale = middle.toggle("Log scale", key="log_scale")
    x = right.radio(
        "X axis", ["step", "elapsed"], horizontal=True, key="x_axis", format_func={"step": "step", "elapsed": "wall time (s)"}.get
    )
    logged = series["key"].unique(maintain_order=True).to_list()
    system = len(logged) - len(chart_keys(logged))
    with_system = system > 0 and st.toggle(f"System metrics ({system}: CPU, memory, GPU)", key="with_system")
    keys = chart_keys(logged, with_system)
    if not keys:
        st.info("No metrics logged yet.")
        return
    grid = st.columns(2)
    for index, key in enumerate(keys):
        chart = charts.metric_chart(
            series.filter(series["key"] == key), key, run_names={run.id: run.name}, smoothing=smoothing, log_scale=log_scale, x=x
        )
        grid[index % 2].altair_chart(chart, width="stretch")


def body(run_id: int) -> None:
    with store().reading():
        run = store().get_run(run_id)
        experiment = store().get_experiment(run.experiment_id)
        series = store().get_metric_series([run.id], None, max_points=1000)
    summary(run, experiment)
    charts_section(run, series)
    with st.expander("Config"):
        st.json(run.config)
    st.subheader("Log")
    st.code(read_log(settings(), run.id, tail_lines=80) or "(no output yet)", language="text")
    if st.session_state.get("was_live") and run.status.is_terminal:
        st.session_state.was_live = False
        st.rerun()  # a full rerun stops the automatic refresh


with friendly_errors():
    run_id = query_id("run", "run")
    if run_id is None:
        pick_run()
    else:
        live = not store().get_run(run_id).status.is_terminal
        st.session_state.was_live = live

        @st.fragment(run_every=REFRESH_SECONDS if live else None)
        def live_body() -> None:
            with friendly_errors():
                body(run_id)

        live_body()
