"""Experiments: filter, sort and page through them; create, delete and restore."""

import streamlit as st

from core import resources
from core.datasets import inspect_dataset, stored_reference, training_warnings
from core.errors import TuneDeckError, ValidationError, quoted
from core.presenters import SORT_LABELS, descending_label, descends_first, experiments_frame, no_experiments_message, plural
from core.status import ExperimentStatus, any_active
from ui.common import (
    DATE_WIDTH,
    TABLE_WIDTH,
    as_this_tab_left_it,
    data_table,
    fitting_widths,
    flash,
    fold,
    fresh,
    friendly_errors,
    live,
    open_on_select,
    plain,
    remember_url_state,
    restore_form,
    rows_high,
    sentence,
    settings,
    show_error,
    show_flash,
    show_validation,
    status_width,
    store,
    through_app,
)

through_app()

PAGE_SIZE = 20

st.title("Experiments")


def create_form() -> None:
    section = fold("New experiment", "new_experiment_open", icon=":material/add:")
    if not section.open:
        return
    created = st.session_state.pop("created_experiment", None)
    if created is not None:  # a blank form for the next one: the name left in it was refused as taken on a second click
        st.session_state.new_name = st.session_state.new_description = ""
    with section:
        name = st.text_input("Name", key="new_name", placeholder="e.g. llama-3 sentiment LoRA")
        dataset = st.text_input("Dataset file (CSV, JSONL or Parquet)", key="new_dataset", value=resources.sample_dataset())
        description = st.text_area("Description (optional)", key="new_description")
        found = None  # what the experiment keeps of the file previewed
        if dataset.strip():
            try:
                shown = inspect_dataset(dataset.strip(), settings().allowed_dataset_roots)
                st.caption(f"{shown.format.upper()} · {plural(shown.n_rows, 'row')} · columns: {plain(', '.join(shown.columns))}")
                st.dataframe(shown.head, hide_index=True, height=180)
                for warning in training_warnings(shown):
                    st.warning(plain(sentence(warning)))
                found = stored_reference(shown, settings().team_mode)
            except TuneDeckError as error:
                show_error(error, about="dataset")
        else:  # the button below is greyed out: say why
            st.caption("Give a dataset file to create the experiment.")
        if st.button("Create experiment", type="primary", key="create", disabled=found is None):
            try:
                experiment_id = store().create_experiment({"name": name, "dataset": found, "description": description})
            except ValidationError as error:
                show_validation(error)
            except TuneDeckError as error:
                show_error(error)
            else:
                st.session_state.created_experiment = (experiment_id, name.strip())
                st.rerun()
        if created is not None:
            created_id, created_name = created
            st.success(plain(f"Created experiment {quoted(created_name)} (#{created_id})."))
            st.page_link("pages/experiment.py", label="Open it", icon=":material/arrow_forward:", query_params={"experiment": created_id})


HEADERS = {"best": "best primary metric"}
RUNS_WIDTH = 60
URL_STATE = ("status", "q", "sort", "desc", "deleted", "page")  # the widgets bound to the URL, and the pager's


def _natural_order() -> None:
    """A new sort starts in its own order: a sort by name went on in the date's newest first, so Z to A."""
    st.session_state.desc = descends_first(st.session_state.sort)


def filters() -> dict:
    left, middle, right, toggles = st.columns([3, 3, 2, 2])
    statuses = left.multiselect("Status", [s.value for s in ExperimentStatus], key="status", bind="query-params")
    name = middle.text_input("Name contains", key="q", bind="query-params")  # in the URL, as a filter to share
    sort = right.selectbox(
        "Sort by", list(SORT_LABELS), key="sort", format_func=SORT_LABELS.get, bind="query-params", on_change=_natural_order
    )
    descending = toggles.toggle(descending_label(sort), value=True, key="desc", bind="query-params")
    deleted = toggles.toggle("Show deleted", key="deleted", bind="query-params")  # the whole list's state in the URL:
    # Back from an experiment, or a shared link, shows the list as it was
    chosen = {
        "status": statuses or None,
        "name_contains": name.strip() or None,
        "sort": sort,
        "descending": descending,
        "include_deleted": deleted,
    }
    if st.session_state.get("listed_by", chosen) != chosen:
        st.session_state.page = 1  # another order or filter starts at its first page
    st.session_state.listed_by = chosen
    return chosen


def manage(page) -> None:
    """Delete (soft, with confirmation) or restore one experiment of the page shown."""
    if not page.items:
        return
    if not st.toggle("Delete or restore", key="managing", help="The list stops refreshing itself while this is on."):
        return
    with st.container(border=True):
        by_id = {e.id: e for e in page.items}
        chosen = by_id[st.selectbox("Experiment", list(by_id), format_func=lambda i: f"{by_id[i].name} (#{i})", key="manage")]
        if chosen.is_deleted:
            restore_form(chosen, key="restore")
            return
        if st.session_state.get("confirm_delete") != chosen.id:
            if st.button("Delete…", key="delete"):
                st.session_state.confirm_delete = chosen.id
                st.rerun()
            return
        st.warning(
            f"Delete {plain(quoted(chosen.name))}? It disappears from the list; its runs, metrics and adapters are kept, "
            "queued and running runs are cancelled, and you can restore it later."
        )
        yes, no = st.columns(2)
        if yes.button("Yes, delete", type="primary", key="confirm"):
            with friendly_errors():
                cancelled = store().delete_experiment(chosen.id)
                st.session_state.confirm_delete = None
                flash(f"Deleted {quoted(chosen.name)}" + (f"; cancelled {plural(len(cancelled), 'active run')}." if cancelled else "."))
                st.rerun()
        if no.button("Keep it", key="keep"):
            st.session_state.confirm_delete = None
            st.rerun()


def requested_page() -> int:
    """The pager's page; before the pager is drawn on this visit (a link to ?page=2), the link's."""
    if "page" in st.session_state:
        return st.session_state.page
    raw = st.query_params.get("page", "1")
    return int(raw) if raw.isdecimal() and raw.isascii() and int(raw) > 0 else 1


def current_page(chosen: dict):
    requested = requested_page()
    page = store().list_experiments(**chosen, page=1, page_size=PAGE_SIZE)
    if requested > 1:
        page = store().list_experiments(**chosen, page=min(requested, page.pages), page_size=PAGE_SIZE)
    if page.page != requested:  # a link past the last page: the pager says the page shown, not page 1
        st.session_state.page = page.page
    return page


def text_room(frame) -> int:
    """What the name, best metric and dataset share: the table less its status, runs and two dates."""
    return TABLE_WIDTH - status_width(frame) - RUNS_WIDTH - 2 * DATE_WIDTH


def running(page) -> bool:
    return any_active(page.items)


def listing(chosen: dict, page) -> bool:
    """The page of experiments asked for; says whether any of them is still running, and the list is not held for
    "Delete or restore"."""
    remember_url_state(URL_STATE)  # here, where a row click leaves: the pager redraws this part alone
    page = fresh(page, lambda: current_page(chosen))
    st.caption(f"{plural(page.total, 'experiment')} · page {page.page} of {page.pages}")
    if page.items:
        frame = experiments_frame(page)
        table = data_table(
            frame,
            on_select="rerun",
            selection_mode="single-cell",
            key="experiments_table",
            height=rows_high(len(page.items)),  # the whole page of rows, not ten and a scroll bar
            column_order=["name", "status", "runs", "best", "dataset", "created", "updated"],
            column_config={
                **{
                    name: st.column_config.TextColumn(HEADERS.get(name, name), width=width)
                    for name, width in fitting_widths(frame, ["name", "best", "dataset"], text_room(frame), headers=HEADERS).items()
                },
                "runs": st.column_config.NumberColumn("runs", width=RUNS_WIDTH),
                "created": st.column_config.DatetimeColumn("created", format="MM-DD HH:mm", width=DATE_WIDTH),
                "updated": st.column_config.DatetimeColumn("updated", format="MM-DD HH:mm", width=DATE_WIDTH),
            },
        )
        st.caption("Click a row to open the experiment.")
        open_on_select(table, frame, "pages/experiment.py", "experiment")
    else:
        filtered = bool(chosen["status"] or chosen["name_contains"] or chosen["include_deleted"])
        hidden = 0 if chosen["include_deleted"] else store().list_experiments(**{**chosen, "include_deleted": True}, page_size=1).total
        st.info(no_experiments_message(filtered, hidden))
    if page.pages > 1:
        st.pagination(page.pages, key="page", bind="query-params")
    return running(page) and not st.session_state.get("managing", False)


with friendly_errors():
    show_flash()
    create_form()
    as_this_tab_left_it(URL_STATE)
    chosen = filters()
    # While an experiment runs the list refreshes itself, and each refresh closes an open option list: picking an
    # experiment to delete or restore pauses it.
    page = current_page(chosen)
    managing = st.session_state.get("managing", False)
    # While nothing runs, the page is read again now and then: a new experiment, or a run started from a script, shows.
    idle = None if managing else lambda: current_page(chosen)
    live(running(page) and not managing, lambda: listing(chosen, page), idle=idle, seen=page)
    manage(page)
