"""TuneDeck: `streamlit run app.py`. Routes to the pages, and keeps an embedded worker running while the server does."""

import os

import streamlit as st

from core.errors import TuneDeckError
from core.settings import get_settings
from core.store_url import store_location
from jobs.embedded import EmbeddedWorker
from ui.common import plain, routing, sentence

st.set_page_config(page_title="TuneDeck", page_icon="🎛️", layout="wide")
try:
    get_settings()  # a wrong TUNEDECK_ variable: said on the page, naming it, instead of a traceback
except TuneDeckError as error:
    reason = str(error)

    def cannot_start() -> None:
        st.error(f"TuneDeck cannot start: {plain(reason)}")

    # The one page there is, whatever the link: without st.navigation Streamlit falls back to running the files in
    # pages/ itself, and those import the queue, which needs the settings.
    st.navigation([st.Page(cannot_start, title="TuneDeck", url_path="home", default=True)], position="hidden").run()
    st.stop()


@st.cache_resource
def embedded_worker() -> EmbeddedWorker:
    """One per server (TUNEDECK_EMBEDDED_WORKER=0 turns it off), bound to its life."""
    return EmbeddedWorker(parent=os.getpid())


try:  # each view: a worker that died (killed, crashed) is replaced, and the new one fails its runs as lost
    if problem := embedded_worker().keep(get_settings()):
        st.warning(plain(sentence(problem)))
except TuneDeckError as error:  # the pages still show the store; queued runs wait for a worker
    st.warning(plain(sentence(str(error))))

pages = [
    st.Page("pages/experiments.py", title="Experiments", icon=":material/science:", url_path="home", default=True),
    st.Page("pages/experiment.py", title="Experiment", icon=":material/folder_open:", url_path="experiment"),
    st.Page("pages/runs.py", title="Runs", icon=":material/manage_search:", url_path="runs"),
    st.Page("pages/run.py", title="Run", icon=":material/monitoring:", url_path="run"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page("pages/adapters.py", title="Adapters", icon=":material/inventory_2:", url_path="adapters"),
    st.Page("pages/jobs.py", title="Jobs", icon=":material/work:", url_path="jobs"),
    # The default page is served at "/", so its own URL needs a page of its own to be a working deep link.
    st.Page("pages/experiments.py", title="Experiments", url_path="experiments", visibility="hidden"),
]
with st.sidebar:
    st.caption(f"Store: `{store_location(get_settings())}`")
with routing():
    st.navigation(pages).run()
