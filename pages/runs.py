"""Every run of every live experiment, found with the search language; click a row to open the run."""

import streamlit as st

from core.presenters import plural
from core.search_views import SHOWN_LIMIT
from ui.common import friendly_errors, store, through_app
from ui.export import export_fold
from ui.search import results_table, search_box

through_app()

st.title("Runs")
with friendly_errors():
    frame = store().search_frame()
    if frame.is_empty():
        st.info("No runs yet: start one from an experiment's page, or log one from a script.")
    else:
        matched, named = search_box(frame, key="search")
        shown = f"; showing the newest {SHOWN_LIMIT:,}" if matched.height > SHOWN_LIMIT else ""
        if named is None:  # the search could not run: every run is shown, and it must not read as a match
            st.caption(f"The search above has an error, so nothing is filtered: all {plural(frame.height, 'run')}{shown}.")
        else:
            st.caption(f"{matched.height:,} of {plural(frame.height, 'run')} match{shown}. Click a run to open it.")
        chosen = results_table(matched, named or (), key="results")
        if st.button("Compare ticked runs", disabled=len(chosen) < 2, key="compare", icon=":material/compare_arrows:"):
            st.switch_page("pages/compare.py", query_params={"runs": ",".join(map(str, chosen))})
        export_fold(lambda: matched, matched.height, chosen, key="export")
