"""Cancelling a run from a page: asked, then confirmed, as deleting an experiment is."""

import streamlit as st

from core.presenters import cancelled_message, run_label
from core.status import RunStatus
from jobs.tasks import cancel_run
from ui.common import flash, plain, settings, store


def cancel_button(run, key: str) -> None:
    """"Cancel run…", then "Yes, cancel it" or "Keep it": one click stopped a training for good (a cancelled run does
    not go on; at best a new run resumes from its last checkpoint). The question stays through a page's refreshes
    and is dropped when another run is chosen."""
    asked = f"{key}_asked"
    if st.session_state.get(asked) != run.id:
        if not st.button("Cancel run…", key=key, icon=":material/stop:"):
            return
        st.session_state[asked] = run.id
    training = run.status == RunStatus.RUNNING
    st.warning(
        plain(f"Cancel {run_label(run)}? ")
        + ("Its training stops at its next heartbeat; what it logged is kept." if training else "It will not start.")
    )
    yes, no = st.columns(2)
    if yes.button("Yes, cancel it", type="primary", key=f"{key}_yes"):
        st.session_state[asked] = None
        with st.spinner("Cancelling…"):
            had = cancel_run(store(), run.id)
        flash(cancelled_message(run_label(run), had == RunStatus.RUNNING, settings().heartbeat_interval))
        st.rerun()
    if no.button("Keep it", key=f"{key}_keep"):
        st.session_state[asked] = None
        st.rerun()
