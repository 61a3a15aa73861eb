"""Jobs: what is queued and running, which workers are alive, and cancel."""


import streamlit as st

from ui.common import through_app

through_app()  # first: the imports below need the settings app.py checks (a page Streamlit starts on its own)

from core.presenters import (
    active_runs_frame,
    plural,
    run_label,
    silence_warning,
    worker_caption,
    workers_training,
)
from core.store_url import safe_message
from jobs.config import ready_queue
from jobs.lock import worker_running
from jobs.reaper import reap, silence_judged_in
from ui.cancel import cancel_button
from ui.common import (
    data_table,
    experiment_names,
    friendly_errors,
    open_on_select,
    plain,
    settings,
    show_flash,
    store,
)

st.title("Jobs")


@st.fragment(run_every=3)
def live() -> None:
    with friendly_errors():
        active = store().list_active_runs()
        cells = st.columns(3)
        cells[0].metric("queued", sum(run.status == "queued" for run in active))
        cells[1].metric("running", sum(run.status == "running" for run in active))
        now, timeout = store().now(), settings().heartbeat_timeout
        training = workers_training(active, now, timeout)
        cells[2].metric("workers training", training, help="Processes that run a run now, on any machine (a silent one is lost).")
        st.caption(worker_caption(worker_running(settings()), settings().team_mode, training))
        if not active:
            st.info("Nothing queued or running.")
            return
        frame = active_runs_frame(active, now, experiment_names(active), silent_after=timeout)
        table = data_table(
            frame,
            on_select="rerun",
            selection_mode="single-cell",
            key="active_table",
            column_order=[column for column in frame.columns if column != "id"],
        )
        st.caption("Click a row to open its run.")
        if warning := silence_warning(active, now, timeout):
            st.warning(warning)
        open_on_select(table, frame, "pages/run.py", "run")
        chosen = st.selectbox("Run", active, format_func=run_label, key="cancel_pick")
        cancel_button(chosen, key="cancel")


show_flash()  # outside the timed section: a cancel's confirmation stays until the next click, not the next refresh
with friendly_errors():
    live()
    with st.expander("Workers and queue"):
        try:
            pending = ready_queue().pending_count()
        except Exception as error:  # noqa: BLE001 - the queue's server refused or is gone: say so, as the store's error does
            st.warning(plain(f"The queue cannot be read: {safe_message(error)}"))
        else:
            st.write(
                f"Entries in the queue: {pending}. They are the jobs of queued runs and the workers' own periodic "
                "checks; a cancelled run's job stays until a worker drops it."
            )
        st.caption(
            "Workers send a heartbeat every few seconds; a run whose worker is gone is failed as 'worker lost' "
            f"after {settings().heartbeat_timeout:.0f} s of silence, or at once when its process on this machine has died."
        )
        if st.button("Check for lost workers now", key="reap"):
            lost = reap(store(), settings())
            said = f"Marked {plural(len(lost), 'run')} as lost." if lost else "No lost runs."
            if wait := silence_judged_in(settings().heartbeat_timeout):
                said += (
                    f" Silent runs are judged in {wait:.0f} s: this app has only just reached the store, and a run may be "
                    "silent because the store was out of reach a moment ago."
                )
            st.success(said)
