"""One experiment: status, best metrics, its runs, new runs (with a learning-rate sweep), curves. Live while runs are."""

from collections.abc import Callable

import polars as pl
import streamlit as st

from ui.common import through_app

through_app()  # first: the imports below need the settings app.py checks (a page Streamlit starts on its own)

from core import charts
from core.compare import metric_keys
from core.dataset_labels import is_label
from core.divergence import WHY_DIVERGED, find_diverged
from core.entities import Experiment
from core.errors import NotFoundError, ValidationError, quoted
from core.presenters import (
    aggregates_frame,
    best_primary_label,
    chart_keys,
    clone_note,
    format_value,
    plural,
    run_label,
    runs_frame,
)
from core.runs import clone_config
from core.search_views import order_runs
from core.status import any_active
from core.sweeps import MAX_SWEEP_RUNS, preview, sweep_runs, typed_count, typed_seed
from core.training_config import DEFAULT_TRAINER
from jobs.tasks import start_run, start_sweep
from jobs.trainers import SHIPPED, trainer_for
from ui.annotations import edit_tags_and_note, show_tags_and_note
from ui.charts import chart_options, draw_panels, page_series, pick_metrics
from ui.common import (
    as_this_tab_left_it,
    data_table,
    fitting_width,
    flash,
    fold,
    fresh,
    friendly_errors,
    leave_for,
    live,
    open_on_select,
    paused_for_ticks,
    plain,
    query_id,
    remember_url_state,
    restore_form,
    sentence,
    show_flash,
    show_validation,
    status_badge,
    store,
    tags_column,
    ticked,
    unless_ticked,
)
from ui.config_form import cannot_start, config_inputs, trainer_choice
from ui.export import export_fold
from ui.run_views import attributes, draw_group_panels, group_of_each_run, groups_section, hyperparameter_views
from ui.search import apply_search, search_text

URL_STATE = ("experiment", "metrics", "run_filter")  # the page's URL: its experiment and the widgets bound to it


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


def header(experiment) -> bool:
    experiment = fresh(experiment, lambda: store().get_experiment(experiment.id))
    st.title(plain(experiment.name))
    status_badge(f"{experiment.status} (deleted)" if experiment.is_deleted else experiment.status)
    if experiment.is_deleted:
        st.warning("This experiment is deleted. Its history is kept; restore it to add runs.")
        restore_form(experiment, key="restore_here")
    st.caption(
        f"Dataset `{experiment.dataset}` · created {experiment.created_at:%Y-%m-%d %H:%M} · updated {experiment.updated_at:%Y-%m-%d %H:%M}"
    )
    if experiment.description:
        st.text(experiment.description)
    show_tags_and_note(experiment.tags, experiment.note)
    if experiment.status == "failed" and experiment.last_error:
        st.error(f"Last error: {plain(sentence(experiment.last_error))}")
    if experiment.best_metrics:
        cells = st.columns(min(len(experiment.best_metrics), 4))
        for index, best in enumerate(experiment.best_metrics):
            cells[index % len(cells)].metric(
                f"best final {best.key}",  # the best of the completed runs' last values, not the lowest a curve touched
                format_value(best.value),
                help=f"The best last value among the completed runs: run #{best.run_id} ({best.direction.value} is better).",
            )
    best = f"best {best_primary_label(experiment)}" if experiment.best_primary else "no completed run has it yet"
    st.caption(f"Primary metric: {experiment.primary_metric} ({best})")
    return experiment.status.is_active


def filtered_runs(detail) -> tuple[list, Callable[[], pl.DataFrame]]:
    """The runs the search box matches, in the order the sort widgets ask for (core's search decides), and
    their rows of the search frame (for the export). With nothing typed and newest first, the search frame is
    read only if an export asks for it (40 ms for 200 runs)."""
    keys = metric_keys(detail.runs)
    left, middle, right = st.columns([5, 3, 2], vertical_alignment="bottom")
    order_by = middle.selectbox("Sort by", ["newest first", *keys], key="run_sort")
    descending = right.toggle("Highest first", key="run_descending", disabled=order_by == "newest first")
    text = search_text(key="run_filter", container=left)
    experiment_id = detail.experiment.id
    if not text.strip() and order_by == "newest first":
        return detail.runs, lambda: store().search_frame([experiment_id])
    matched, _ = apply_search(store().search_frame([experiment_id]), text)
    ordered = order_runs(matched, None if order_by == "newest first" else order_by, descending)
    by_id = {run.id: run for run in detail.runs}
    return [by_id[run_id] for run_id in ordered["id"].to_list() if run_id in by_id], lambda: ordered


def runs_section(detail, series, diverged: set[int]) -> None:
    st.subheader(f"Runs ({len(detail.runs)})")
    if not detail.runs:
        st.info("No runs: it was deleted before any ran." if detail.experiment.is_deleted else "No runs yet: start one above.")
        return
    if diverged:
        st.warning(f"{plural(len(diverged), 'run')} diverged: {WHY_DIVERGED}.")
    shown, matched = filtered_runs(detail)
    if len(shown) < len(detail.runs):
        st.caption(f"{len(shown)} of {plural(len(detail.runs), 'run')} match.")
    frame = runs_frame(shown, charts.sparklines(series, "loss"), now=store().now(), diverged=diverged)
    st.caption("Click a run to open it; tick the boxes on the left to compare runs.")
    table = data_table(
        frame,
        live=True,
        on_select="rerun",
        selection_mode=["multi-row", "single-cell"],
        key="runs_table",
        column_order=[column for column in frame.columns if column != "id"],
        column_config={
            "run": st.column_config.TextColumn("run", width=fitting_width(frame["run"].to_list())),
            "loss curve": st.column_config.LineChartColumn("loss curve", width="small"),
            "adapter": st.column_config.TextColumn("adapter", width="small"),
            "tags": tags_column(),
            # a width of its own: left to the table, the times that came with a live update showed cut ("12-01 00")
            "started": st.column_config.DatetimeColumn("started", format="MM-DD HH:mm:ss", width=125),
        },
    )
    selected = [shown[row].id for row in table.selection.rows if row < len(shown)] if table is not None else []
    by_id = {run.id: run for run in detail.runs}
    remember_url_state(URL_STATE)  # here, where a row click or "Compare selected" leaves
    open_on_select(table, frame, "pages/run.py", "run")
    if selected != st.session_state.get("compare_ticked"):  # new ticks fill the box (a widget's default is read once)
        st.session_state.compare_ticked = st.session_state.compare_pick = selected
    chosen = st.multiselect("Runs to compare", list(by_id), format_func=lambda i: run_label(by_id[i]), key="compare_pick")
    if st.button("Compare selected", disabled=len(chosen) < 2, key="compare", icon=":material/compare_arrows:"):
        leave_for("pages/compare.py", {"runs": ",".join(map(str, chosen))})
    going = sum(run.status.is_active for run in detail.runs)
    if going and selected:
        paused_for_ticks(going)
    export_fold(matched, len(shown), chosen, key="export")
    if detail.aggregates:
        section = fold("Aggregated metrics of the completed runs", "aggregates_open")
        if section.open:
            with section:
                data_table(aggregates_frame(detail.aggregates, detail.runs))


def curve_controls(detail) -> tuple[list[str], object, bool]:
    """The chart widgets: which metrics, how drawn, and whether by group."""
    keys = metric_keys(detail.runs)
    if not keys:
        return [], None, False
    st.subheader("Curves")
    defaults = [detail.experiment.primary_metric, "loss"]
    chosen = pick_metrics(keys, defaults, f"experiment {detail.experiment.id}", key="metrics")
    options = chart_options(len(detail.runs), len(chosen))
    by_group = len(detail.runs) > 1 and st.toggle(
        "By group: mean ± std", key="group_curves", help="One curve per group of the Group by picker, with a ± 1 std band."
    )
    if not chosen:
        only_system = not chart_keys(keys)  # a run that failed before training logs CPU and memory alone
        st.caption("Only system metrics (CPU, memory) were logged: choose them above to chart them." if only_system else "Choose at least one metric to chart.")
    return chosen, options, by_group


def runs_and_curves(experiment_id: int) -> bool:
    detail = store().get_experiment_detail(experiment_id)
    runs_area, groups_area, curves_area = st.container(), st.container(), st.container()
    with curves_area:
        chosen, options, by_group = curve_controls(detail)
    series = page_series([run.id for run in detail.runs], chosen)
    with runs_area:
        runs_section(detail, series, find_diverged(store(), detail.runs))  # one verdict per run, as every page
    with groups_area:
        frame = attributes(detail)
        groups_section(frame)
        hyperparameter_views(frame, detail.experiment.primary_metric, st.session_state.get("compare_pick", []))
    if chosen:
        with curves_area:
            if by_group:
                draw_group_panels(series, chosen, group_of_each_run(frame), options)
            else:
                draw_panels(series, chosen, {run.id: run.name for run in detail.runs}, options, family=[run.id for run in detail.runs])
    return any_active(detail.runs) and not ticked("runs_table")


SWEEP_MODES = {"One run": None, "Grid": "grid", "Random search": "random"}
SWEEP_HELP = (
    "One setting per line. Values: `learning_rate = 1e-3, 3e-3, 1e-2`, brackets optional (a grid tries each; a "
    "random search picks among them). Ranges, random search only: `lora_rank = 4 .. 32`, `learning_rate = 1e-4 .. 1e-2 log`."
)


def rename_form(experiment) -> None:
    """A new name for the experiment (the Experiments page restores a deleted one under a new name)."""
    section = fold("Rename", "rename_open", icon=":material/edit:")
    if not section.open:
        return
    with section, st.form("rename", border=False):
        name = st.text_input("New name", value=experiment.name, key="rename_to")
        if st.form_submit_button("Rename", icon=":material/edit:"):
            with friendly_errors():
                store().rename_experiment(experiment.id, name)
                flash(f"Renamed to {quoted(name.strip())}.")
                st.rerun()


def primary_metric_form(experiment) -> None:
    """The metric that ranks runs and marks the best adapter, among those the runs logged."""
    section = fold("Primary metric", "primary_open", icon=":material/star:")
    if not section.open:
        return
    keys = [best.key for best in experiment.best_metrics]
    with section:
        if not keys:
            st.caption("No run has logged a metric yet: the ones they log are offered here.")
            return
        with st.form("primary", border=False):
            index = keys.index(experiment.primary_metric) if experiment.primary_metric in keys else 0
            key = st.selectbox("Rank runs by", keys, index=index, key="primary_pick")
            if st.form_submit_button("Save", icon=":material/star:"):
                with friendly_errors():
                    store().set_primary_metric(experiment.id, key)
                    flash(f"Runs are ranked by {key} now.")
                    st.rerun()


def cloned_run():
    """The run whose settings fill the form (?clone=<run id>, from "Clone" on a run's page), if any. A shared link
    to a run deleted since, or mistyped, loses the form its clone, not the page its runs."""
    try:
        run_id = query_id("clone", "cloned run")
        return None if run_id is None else store().get_run(run_id)
    except (NotFoundError, ValidationError) as error:
        st.warning(f"{plain(sentence(str(error)))} There is nothing to clone: the New run form starts from the defaults.")
        return None


def sweep_inputs(trainer: str) -> tuple[str | None, str, int, int, int | None]:
    """Mode, lines, count and seed of a sweep, and how many runs it starts (None while the lines are wrong).
    Outside the form, so the count updates before Start is pressed."""
    mode = SWEEP_MODES[st.radio("Runs to start", list(SWEEP_MODES), horizontal=True, key="sweep_mode")]
    if mode is None:
        return None, "", 1, 0, 1
    text = st.text_area(
        "Settings to sweep", key="sweep_lines", help=SWEEP_HELP, placeholder="learning_rate = 1e-3, 3e-3, 1e-2\nlora_rank = 4, 8"
    )
    count, seed = 10, 0
    if mode == "random":
        left, right = st.columns(2)
        typed_runs = left.text_input("Runs", value="10", key="sweep_count", help=f"1 to {MAX_SWEEP_RUNS} runs at once.")
        typed = right.text_input("Random seed", value="0", key="sweep_seed", help="The same seed draws the same runs.")
        try:
            count, seed = typed_count(typed_runs), typed_seed(typed)
        except ValidationError as error:  # never a sweep other than the one on screen
            st.caption(f":orange[{plain(sentence(str(error)))}]")
            return mode, text, count, seed, None
    try:
        size, said = preview(text, trainer, mode, int(count))
    except ValidationError as error:
        st.caption(f":orange[{plain(sentence(str(error)))}]" if text.strip() else SWEEP_HELP)
        return mode, text, int(count), int(seed), None
    st.caption(said)
    return mode, text, int(count), int(seed), size


def new_run_form(experiment: Experiment) -> None:
    experiment_id = experiment.id
    clone = cloned_run()
    section = fold("New run", "new_run_open", icon=":material/play_arrow:", expanded=clone is not None)
    if section.open:
        with section:
            run_form(experiment_id, clone, experiment.dataset)
    where, runs = st.session_state.pop("started", (None, []))  # said once, on the experiment they were started in
    if runs and where == experiment_id:
        labels = ", ".join(run_label(run) for run in store().get_runs(runs))  # as the runs table names them
        st.success(f"Started {plural(len(runs), 'run')}: {plain(labels)}.")


def _unclone() -> None:
    """Before the rerun (a callback): the form, opened by the clone, stays open for the defaults."""
    del st.query_params["clone"]
    st.session_state.new_run_open = True


def run_form(experiment_id: int, clone, dataset: str) -> None:
    prefix, initial = "cfg", None
    if is_label(dataset):
        st.info(
            f"This experiment has no dataset file (its dataset is {plain(dataset)}): the {' and '.join(SHIPPED)} trainers "
            "cannot run here; a registered command, which reads its own data, can."
        )
    if clone is not None:
        prefix, initial = f"clone{clone.id}", clone_config(clone)
        st.info(plain(clone_note(run_label(clone), clone.config, initial)))
        st.button("Start from the defaults instead", key="unclone", on_click=_unclone)
    trainer = trainer_choice(prefix, (initial or {}).get("trainer", trainer_for(dataset)))
    if initial is not None and trainer != initial.get("trainer", DEFAULT_TRAINER):
        initial = None
    mode, lines, count, seed, size = sweep_inputs(trainer)
    with st.form("new_run"):
        values = config_inputs(trainer, prefix, initial=initial)
        label = "Start" if mode is None else f"Start {plural(size, 'run')}" if size else "Start the sweep"
        blocked = cannot_start(trainer)  # its run would fail at once: what to install is said under the picker
        submitted = st.form_submit_button(label, type="primary", disabled=blocked or (mode is not None and size is None))
    if submitted:
        try:
            if mode is None:
                started = [start_run(store(), experiment_id, values)]
            else:
                started = start_sweep(store(), experiment_id, sweep_runs(values, lines, mode, count, seed))
        except ValidationError as error:
            show_validation(error)
        else:
            st.session_state.started = (experiment_id, started)
            st.rerun()


with friendly_errors(back=("pages/experiments.py", "All experiments")):
    show_flash()  # what a rename or a restore said, after its rerun: at the top, not down in the tags section
    as_this_tab_left_it(URL_STATE)  # Back from a run opened here: this experiment, not the page's picker
    experiment_id = query_id("experiment", "experiment")
    if experiment_id is None:
        pick_experiment()
    else:
        experiment = store().get_experiment(experiment_id)
        active = experiment.status.is_active
        live(
            active,
            lambda: header(experiment),
            idle=lambda: unless_ticked("runs_table", lambda: store().get_experiment(experiment_id)),
            seen=unless_ticked("runs_table", lambda: experiment),
        )
        edit_tags_and_note("experiment", experiment_id, experiment.tags, experiment.note)
        if not experiment.is_deleted:
            rename_form(experiment)
            primary_metric_form(experiment)
            new_run_form(experiment)
        live(active and not ticked("runs_table"), lambda: runs_and_curves(experiment_id))
