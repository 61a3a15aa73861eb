"""What every page needs: the store, error handling that never shows a traceback, and small widgets."""

import logging
import runpy
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import polars as pl
import streamlit as st

from core import open_store, resources
from core.errors import NotFoundError, TuneDeckError
from core.presenters import STATUS_COLOURS, escape_markdown, parse_id, status_cell_style
from core.settings import Settings, get_settings
from core.store import TrackingStore

log = logging.getLogger("tunedeck.ui")
APP = resources.app_file()
_routing = threading.local()


@contextmanager
def routing() -> Iterator[None]:
    """app.py runs the chosen page inside this, so the page knows it came through the app."""
    _routing.active = True
    try:
        yield
    finally:
        _routing.active = False


def through_app() -> None:
    """Run app.py instead when Streamlit started this page on its own, then stop this run.

    Until app.py has run once, Streamlit sends a first visit's deep link (/run?run=12) straight
    to pages/run.py (streamlit#9624), skipping the navigation, page setup and embedded worker.
    app.py then runs this page again through st.navigation, inside routing().
    """
    if getattr(_routing, "active", False):
        return
    runpy.run_path(str(APP), run_name="__main__")
    st.stop()


def store() -> TrackingStore:
    """A store handle: cheap, holds no connection, so each call may make a fresh one."""
    return open_store()


def settings() -> Settings:
    return get_settings()


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Show our errors as messages and anything unexpected as a short apology, logging the details."""
    try:
        yield
    except NotFoundError as error:
        st.warning(f"{error}. It may have been deleted, or the link is mistyped.")
    except TuneDeckError as error:
        st.error(str(error))
    except Exception:
        log.exception("page failed")
        st.error("Something went wrong while drawing this page. The details are in the server log; reload to try again.")


def query_id(name: str, what: str) -> int | None:
    """An ID from the URL (?name=ID); a malformed one raises a friendly ValidationError."""
    return parse_id(st.query_params.get(name), what)


def status_badge(status: str) -> None:
    st.badge(str(status), color=STATUS_COLOURS.get(str(status), "gray"))


def plain(text: str) -> str:
    """User text safe to put inside Markdown (titles, captions)."""
    return escape_markdown(text)


def with_status_colours(frame: pl.DataFrame, column: str = "status"):
    """The frame as a table whose status cells are coloured like badges."""
    return frame.to_pandas().style.map(status_cell_style, subset=[column])
