"""Every run of every live experiment, found with the search language; click a row to open the run. Live while
any run is queued or running."""

import streamlit as st

from core.presenters import plural
from core.search_views import SHOWN_LIMIT, running_count
from ui.common import (
    as_this_tab_left_it,
    fresh,
    friendly_errors,
    leave_for,
    live,
    paused_for_ticks,
    remember_url_state,
    store,
    through_app,
    ticked,
    unless_ticked,
)
from ui.export import export_fold
from ui.search import results_table, search_box

through_app()

st.title("Runs")

URL_STATE = ("search",)  # the search box, bound to the URL


def runs(first) -> bool:
    frame = fresh(first, lambda: store().search_frame())
    if frame.is_empty():
        st.info("No runs yet: start one from an experiment's page, or log one from a script.")
        return False
    matched, named = search_box(frame, key="search")
    remember_url_state(URL_STATE)  # here, where a row click or "Compare selected" leaves
    shown = f"; showing the newest {SHOWN_LIMIT:,}" if matched.height > SHOWN_LIMIT else ""
    if named is None:  # the search could not run: every run is shown, and it must not read as a match
        st.caption(f"The search above has an error, so nothing is filtered: all {plural(frame.height, 'run')}{shown}.")
    else:
        st.caption(f"{matched.height:,} of {plural(frame.height, 'run')} match{shown}. Click a run to open it.")
    chosen = results_table(matched, named or (), key="results")
    if st.button("Compare selected", disabled=len(chosen) < 2, key="compare", icon=":material/compare_arrows:"):
        leave_for("pages/compare.py", {"runs": ",".join(map(str, chosen))})
    export_fold(lambda: matched, matched.height, chosen, key="export")
    going = running_count(frame)
    # Ticks are row positions: a run started meanwhile would move them onto other runs, so ticking pauses the refresh.
    paused = bool(going and chosen)
    if paused:
        paused_for_ticks(going)
    elif going:
        st.caption(f"{plural(going, 'run')} queued or running: this list refreshes itself until they end.")
    return going > 0 and not paused


def latest():
    """For an idle list: any run's start or end touches its experiment, so the one touched last tells that a run came
    or went (held while runs are ticked)."""
    return unless_ticked("results", lambda: store().list_experiments(sort="updated_at", page_size=1))


with friendly_errors():
    as_this_tab_left_it(URL_STATE)  # Back from a run opened here: this search, not an empty box
    seen = latest()  # before the runs are read: a run that comes between the two reads is noticed
    first = store().search_frame()
    live(running_count(first) > 0 and not ticked("results"), lambda: runs(first), idle=latest, seen=seen)
