"""One run: status, progress and latest values first, then curves, config, error, adapter and the log (collapsed)."""


import streamlit as st

from ui.common import through_app

through_app()  # first: the imports below need the settings app.py checks (a page Streamlit starts on its own)

from core.artifacts import run_files
from core.divergence import WHY_DIVERGED, find_diverged
from core.logs import run_log, search_log
from core.presenters import (
    LATEST_TILES,
    SUMMARY_KEYS,
    chart_keys,
    experiment_link_label,
    latest_metrics,
    latest_table,
    log_caption,
    run_progress,
    still_changing,
)
from core.runs import offers_resume, resume_config
from jobs.tasks import start_run
from ui.annotations import edit_tags_and_note, show_tags_and_note
from ui.cancel import cancel_button
from ui.charts import chart_options, draw_panels, page_series, pick_metrics
from ui.common import (
    fold,
    fresh,
    friendly_errors,
    live,
    plain,
    query_id,
    sentence,
    settings,
    show_flash,
    status_badge,
    store,
    switch_to,
)
from ui.samples import run_samples

LOG_LINES = 200


def pick_run() -> None:
    st.title("Run")
    st.info("Open a run from an experiment's run table, or follow a link like /run?run=12.")


def summary(run, experiment, diverged: bool) -> None:
    st.title(plain(f"{run.name} (#{run.id})"))
    badges = st.columns([1, 1, 8])
    with badges[0]:
        status_badge(run.status)
    if diverged:
        with badges[1]:
            st.badge("diverged", icon=":material/warning:", color="red")
    show_tags_and_note(run.tags, run.note)
    st.page_link(
        "pages/experiment.py",
        label=plain(experiment_link_label(experiment)),
        query_params={"experiment": experiment.id},
        icon=":material/arrow_back:",
    )
    progress = run_progress(run, store().now())
    if progress.fraction is None:  # no planned length known (a script without max_steps): the step alone, no empty bar
        st.caption(progress.label())
    else:
        st.progress(progress.fraction, text=progress.label())
    latest = latest_metrics(run)
    if latest:
        cells = st.columns(min(len(latest), 5))  # five fit a label like samples_per_second and 6.667e-05 at 1440 px
        for index, (key, value, step) in enumerate(latest[:LATEST_TILES]):
            cells[index % len(cells)].metric(key, value, help=f"latest value, at {step}")
        if len(latest) > LATEST_TILES:  # a tile a key drew 5,000 per-layer metrics for 55 s
            with st.expander(f"All {len(latest):,} metrics' latest values"):
                st.dataframe(latest_table(latest), hide_index=True)
    if diverged:
        st.warning(f"This run diverged: {WHY_DIVERGED}.")
    if run.adapter:
        st.page_link(
            "pages/adapters.py",
            label=f"Adapter {plain(run.adapter.name)} v{run.adapter.version}",
            query_params={"adapter": run.adapter.id},
            icon=":material/inventory_2:",
        )
    if run.error:
        box = st.error if run.status == "failed" else st.info
        box(plain(sentence(run.error)))
        if run.traceback:  # a crash's traceback, or the last lines a killed process printed
            with st.expander("Traceback" if run.traceback.lstrip().startswith("Traceback") else "Last output"):
                st.code(run.traceback, language="text")
    st.page_link(
        "pages/experiment.py",
        label="Clone: a new run with these settings",
        query_params={"experiment": run.experiment_id, "clone": run.id},
        icon=":material/content_copy:",
    )
    if run.status.is_active:
        cancel_button(run, key="cancel")
    if offers_resume(run, settings().checkpoints_dir) and st.button("Resume from its last checkpoint", key="resume", icon=":material/replay:"):
        resumed = start_run(store(), run.experiment_id, resume_config(run))
        switch_to("pages/run.py", {"run": str(resumed)})


def chart_controls(run) -> tuple[list[str], object]:
    keys = sorted(run.metrics)
    if not keys:
        st.info("No metrics logged yet." if run.status.is_active else f"No metrics: the run {run.status.value} before it logged any.")
        return [], None
    defaults = [key for key in SUMMARY_KEYS if key in keys] or chart_keys(keys)
    chosen = pick_metrics(keys, defaults, f"run {run.id}", key="run_metrics")
    options = chart_options(1, len(chosen))
    if not chosen:
        only_system = not chart_keys(keys)  # a run that failed before its first step: its CPU and memory, say
        st.caption("Only system metrics were logged: pick one to chart." if only_system else "Choose at least one metric to chart.")
    return chosen, options


def log_section(run_id: int, ended: bool) -> None:
    section = fold("Log", "log_open", icon=":material/description:")
    if not section.open:
        return
    with section:
        text = run_log(store(), settings(), run_id, tail_lines=None)
        if not text:
            st.caption("The run wrote no output." if ended else "No output yet.")
            return
        left, right = st.columns([4, 1], vertical_alignment="bottom")
        query = left.text_input("Search the log", key="log_search", placeholder="e.g. error, step 100")
        right.download_button("Download log", text, file_name=f"run-{run_id}.log", mime="text/plain", key="log_download")
        shown, matched = search_log(text, query, LOG_LINES)
        st.caption(log_caption(query, matched, LOG_LINES))
        if query.strip() and not matched:
            return
        st.code(shown, language="text", height=400)


def files_section(run_id: int) -> None:
    files = run_files(settings().data_dir, run_id, settings().artifact_root)
    if not files:
        return
    section = fold(f"Files ({len(files)})", "files_open", icon=":material/attach_file:")
    if not section.open:
        return
    with section:
        for index, file in enumerate(files):
            st.download_button(  # read when clicked, not on every live refresh of the page
                file.name, data=file.read_bytes, file_name=file.name, on_click="ignore", key=f"file_{index}", icon=":material/download:"
            )


def body(run) -> bool:
    run = fresh(run, lambda: store().get_run(run.id))
    experiment = store().get_experiment(run.experiment_id)
    top = st.container()
    chosen, options = chart_controls(run)
    series = page_series([run.id], chosen)
    with top:
        summary(run, experiment, bool(find_diverged(store(), [run])))  # as every page judges it
    if chosen:
        draw_panels(series, chosen, {run.id: run.name}, options)
    run_samples(store(), run.id, ended=run.status.is_terminal)
    section = fold("Config", "config_open")
    if section.open:
        section.json(run.config)
    files_section(run.id)
    log_section(run.id, run.status.is_terminal)
    return still_changing(run, store().now())


with friendly_errors(back=("pages/runs.py", "All runs")):
    show_flash()  # what a cancel did, after its rerun
    run_id = query_id("run", "run")
    if run_id is None:
        pick_run()
    else:
        run = store().get_run(run_id)
        live(still_changing(run, store().now()), lambda: body(run))
        edit_tags_and_note("run", run.id, run.tags, run.note)
