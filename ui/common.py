"""What every page needs: the store, error handling that never shows a traceback, and small widgets."""

import logging
import runpy
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import polars as pl
import streamlit as st
from polars.exceptions import PanicException
from streamlit.errors import StreamlitAPIException
from streamlit.runtime.scriptrunner import get_script_run_ctx

from core import open_store, resources
from core.errors import NotFoundError, TuneDeckError, ValidationError, quoted
from core.presenters import STATUS_COLOURS, STATUS_TAG_COLOURS, TAG_SEPARATOR, escape_markdown, format_value, parse_id, plural
from core.settings import Settings, get_settings
from core.store import TrackingStore
from core.validation import labelled

log = logging.getLogger("tunedeck.ui")
APP = resources.app_file()
_routing = threading.local()
REFRESH_SECONDS = 2
T = TypeVar("T")


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


def experiment_names(runs) -> dict[int, str]:
    """The names of the experiments these runs belong to, by ID (runs from several: the Jobs and Compare pages)."""
    return {experiment_id: store().get_experiment(experiment_id).name for experiment_id in {run.experiment_id for run in runs}}


def settings() -> Settings:
    return get_settings()


@contextmanager
def friendly_errors(back: tuple[str, str] | None = None) -> Iterator[None]:
    """Show our errors as messages and anything unexpected as a short apology, logging the details. `back`: the
    page (path, label) a page drawn from a link offers when its ID is wrong, so a mistyped link is no dead end."""
    try:
        yield
    except NotFoundError as error:
        if back is None:
            st.warning(f"{plain(sentence(str(error)))} It may have been deleted, or the link is mistyped.")
        else:
            st.warning(f"{plain(sentence(str(error)))} Check the number in the link, or open it from the list.")
            _back_button(*back)
    except ValidationError as error:
        show_validation(error)
        if back is not None:
            _back_button(*back)
    except TuneDeckError as error:
        show_error(error)
    except (Exception, PanicException):  # Polars' panics are BaseExceptions: a page half drawn, and no word
        log.exception("page failed")
        st.error("Something went wrong while drawing this page. The details are in the server log; reload to try again.")


def _back_button(page: str, label: str) -> None:
    """To the list, without the link's ID: a page link to the same page (the adapters list) kept `?adapter=`."""
    if st.button(label, icon=":material/arrow_back:", type="tertiary", key="back_from_bad_link"):
        st.query_params.clear()
        switch_to(page)


def query_id(name: str, what: str) -> int | None:
    """An ID from the URL (?name=ID); a malformed one raises a friendly ValidationError."""
    return parse_id(st.query_params.get(name), what)


def status_badge(status: str) -> None:
    st.badge(str(status), color=STATUS_COLOURS.get(str(status), "gray"))


def plain(text: str) -> str:
    """User text safe to put inside Markdown (titles, captions)."""
    return escape_markdown(text)


LONGEST_NUMBER = "0.000001234"  # the longest text "%.4g" gives a metric in the grid (from 1e-6 to 1e-5)
BEYOND_THE_GRID = 2.0**53  # the largest whole number the table's grid takes; floats past it are all whole


def data_table(frame: pl.DataFrame, column_config: dict | None = None, live: bool = False, **options):
    """st.dataframe in the house style: numbers to 4 significant digits, a status column as coloured tags
    ("completed", "diverged"), every empty cell "–".

    Column configs, not a pandas Styler: a Styler took 200 ms for a 200-run table, a quarter of the experiment page.
    Numbers stay numbers, so a header click sorts them as numbers.

    `live`: a table a live page redraws. The grid keeps the column widths of its first draw, so its number columns
    are made wide enough for any value they may come to hold: a running run's loss that fell to 0.00007964 showed
    as "00007964".
    """
    floats = [name for name, dtype in frame.schema.items() if dtype.is_float()]
    # The grid refuses a number past 2^53 (a diverged run's loss of 1e169) with an error in the cell: such a column
    # is shown as text, to 4 significant digits all the same (it then sorts as text).
    huge = [name for name in floats if (frame[name].abs() >= BEYOND_THE_GRID).any()]
    config: dict = {
        name: st.column_config.NumberColumn(name, format="%.4g", width=fitting_width([name, LONGEST_NUMBER]) if live else None)
        for name in floats
        if name not in huge
    }
    strings = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    as_text = (pl.Series(name, [format_value(value) for value in frame[name].to_list()], pl.String) for name in huge)
    shown = frame.with_columns(pl.col(strings).replace("", None).fill_null("–"), *as_text)  # as the grid shows a missing number
    if frame.schema.get("status") == pl.String:
        shown = shown.with_columns(pl.col("status").str.split(TAG_SEPARATOR))
        config["status"] = st.column_config.MultiselectColumn(
            "status", options=list(STATUS_TAG_COLOURS), color=list(STATUS_TAG_COLOURS.values()), width=status_width(frame)
        )
    config.update(column_config or {})
    # As Arrow: a Polars frame is turned into pandas first (7 % of the server's time under load).
    return st.dataframe(shown.to_arrow(), hide_index=True, placeholder="–", column_config=config, **options)


def status_width(frame: pl.DataFrame) -> int:
    """The status column's pixels: two tags ("completed · diverged") need more than one."""
    two_tags = "status" in frame.columns and bool(frame["status"].str.contains(TAG_SEPARATOR, literal=True).any())
    return 175 if two_tags else 105


TABLE_WIDTH = 976  # a table's pixels at 1440 beside the open sidebar (978), less its borders
DATE_WIDTH = 95  # "12-03 10:38" whole ("small" cut it to "12-03 10:3")
ROW_PIXELS = 35  # st.dataframe's row, and header, height


def fitting_width(texts: list[str], least: int = 75, most: int = 240) -> int:
    """Pixels for a text column to show its longest value (about 7 a character), within bounds: a runs table's names
    read "rank-64-cos" in a small column while the page had room for them."""
    return min(most, max(least, 7 * max((len(text) for text in texts), default=0) + 16))


def fitting_widths(
    frame: pl.DataFrame, columns: list[str], room: int, least: int = 60, headers: dict[str, str] | None = None
) -> dict[str, int]:
    """Pixels for text columns that share `room`: each as wide as its header and longest value, and where they do not
    all fit, the widest cut down to one width so that the short ones stay whole (the adapters list cut experiment
    names at 120 px while two columns of dashes took 280). `headers`: a column's heading, where it is not its name."""
    headers = headers or {}
    natural = {
        name: fitting_width([headers.get(name, name), *(text or "" for text in frame[name].to_list())], least, most=room)
        for name in columns
    }
    cap, left = room, room
    for count, width in enumerate(sorted(natural.values())):
        share = left // (len(natural) - count)
        if width > share:  # this one and every wider one get the same share of what is left
            cap = share
            break
        left -= width
    return {name: min(width, cap) for name, width in natural.items()}


def tags_column() -> dict:
    """A runs table's tags ("base=llama, seed=3") wide enough to read: left to the table they showed "base=ll"."""
    return st.column_config.TextColumn("tags", width=140)


def rows_high(rows: int, at_most: int = 25) -> int:
    """A table's height for its rows, up to `at_most` of them (st.dataframe shows ten and a scroll bar by default)."""
    return ROW_PIXELS * (min(rows, at_most) + 1) + 3


def fold(label: str, key: str, icon: str | None = None, expanded: bool = False):
    """An expander whose contents a page draws only while it is open: `if section.open:` then `with section:`.
    Opening it reruns the page. A closed form, log or export was built on every view all the same: a tenth of
    the experiment page's time."""
    return st.expander(label, expanded=expanded, key=key, icon=icon, on_change="rerun")


def clicked_id(event, frame: pl.DataFrame) -> int | None:
    """The id of the row whose cell was clicked (tables drawn with selection_mode including "single-cell")."""
    cells = event.selection.get("cells", []) if event is not None else []
    return int(frame["id"][cells[0][0]]) if cells and cells[0][0] < frame.height else None


def open_on_select(event, frame: pl.DataFrame, page: str, param: str) -> None:
    """Clicking a row's cell opens its page in this tab (a table's link column would open a new one)."""
    chosen = clicked_id(event, frame)
    if chosen is not None:
        leave_for(page, {param: str(chosen)})


def leave_for(page: str, query: dict[str, str]) -> None:
    """`switch_to`, keeping this page's URL state (`remember_url_state`) for the history entry switch_page leaves
    behind, whose query is the new page's. Back to that entry then restores the state the page had when it was left,
    not the state it had last: experiment A, a run, experiment B, a run, and Back to A's entry showed B. A page that
    keeps no URL state (the adapters list, the jobs page) leaves nothing behind."""
    state = st.session_state.get(_url_state_key())
    if state is not None:
        st.session_state[_departure_key(query)] = state
    switch_to(page, query)


def switch_to(page: str, query: dict[str, str] | None = None) -> None:
    """st.switch_page, after forgetting this page's fragments. A timed fragment (a live section, an idle check) whose
    timer fires while the switch is under way sends a rerun of this page's fragment. Streamlit queued it behind the new
    page's run, then ran it as this page: the new page went blank until its next rerun (a scatter point opened an empty
    run page). A request for a fragment Streamlit no longer holds is dropped on arrival. The fragment storage is
    Streamlit's own (pinned in requirements.txt); the scatter-click browser test fails if clearing it stops working."""
    context = get_script_run_ctx()
    if context is not None:
        context.fragment_storage.clear()
    st.switch_page(page, query_params=query)


def as_this_tab_left_it(params: tuple[str, ...]) -> None:
    """Back to a page whose state lives in its URL, after a row click opened another page, gets the state it had:
    st.switch_page first adds an entry of the page's own path with the new page's query (?experiment=7), so the entry
    Back returns to holds that query and none of the page's own. Only then: a bare URL opened on purpose shows the
    defaults. The state is the one the page had when `leave_for` left it for that query, else the last one. Call
    before the widgets bound to `params`, and `remember_url_state` after them (and after any fragment that changes
    them)."""
    query = st.query_params
    saved = st.session_state.get(_departure_key(query.to_dict()))  # as it was when left for this entry's query
    if saved is None:
        saved = st.session_state.get(_url_state_key())  # as it was last
    if saved is None or not query or any(name in query for name in params):  # {}: it was left on its defaults
        return
    try:
        query.from_dict(saved)  # one change of the address, another page's parameter gone
    except StreamlitAPIException:
        return  # the widgets' bindings outlived a run of the other page that was cut short: the defaults, then
    time.sleep(0.02)  # as st.switch_page does: the new URL reaches the browser before the rerun drops what is unsent
    st.rerun()  # the widgets take their first values from the URL the run started with


def text_in_url(label: str, param: str, **options) -> str:
    """A text box whose value lives in the URL's `param`, kept there here rather than by `bind="query-params"`:
    Streamlit drops a parameter bound to one page's widget from every other page's address, so the history entry a
    switch to the compare page leaves behind (the page left, with ?runs=A,B) lost its query, and Back from a
    comparison showed the experiment page's picker instead of the experiment it was started on."""
    in_url = st.query_params.get(param, "")
    key, seen = f"{param}_in_url", f"_{param}_in_url_seen"
    if key not in st.session_state or st.session_state.get(seen) != in_url:  # a new visit, a link, Back: the URL's
        st.session_state[key] = in_url
    typed = st.text_input(label, key=key, **options)
    if typed != in_url:
        if typed:
            st.query_params[param] = typed
        else:
            del st.query_params[param]
    st.session_state[seen] = typed
    return typed


def remember_url_state(params: tuple[str, ...]) -> None:
    st.session_state[_url_state_key()] = {name: st.query_params.get_all(name) for name in params if name in st.query_params}


def _url_state_key() -> str:
    context = get_script_run_ctx()
    return f"_url_state_{context.page_script_hash if context else ''}"


def _departure_key(query: dict[str, str]) -> str:
    return f"{_url_state_key()}_left_for_{sorted(query.items())}"


def live(active: bool, draw: Callable[[], bool], idle: Callable[[], object] | None = None, seen: object = None) -> None:
    """Draw a section now and, while `active`, again every REFRESH_SECONDS.

    `draw` reads fresh data, draws it and says whether anything it shows is still queued or running (and the page
    is not held: rows ticked); once a timed redraw finds nothing is, one full rerun draws the page without the timer,
    and a redraw of a page drawn without it that finds something is (ticks cleared) starts it. `active` must ask the
    same question as `draw`, or the page reruns every REFRESH_SECONDS.

    `idle`: a cheap read of what the page shows, for while nothing is active. It is read again every
    TUNEDECK_IDLE_CHECK_INTERVAL seconds. When it differs from `seen`, its value read before the page read what it
    draws (a run started from a script or another tab since), the page is drawn again, live if something now runs.
    Without it an idle page showed a run started elsewhere only after a reload. `idle` returns None while the page
    must hold what it shows (rows ticked: ticks are row positions, which a redraw with a new run would move onto
    other runs).
    """

    @st.fragment(run_every=REFRESH_SECONDS if active else None)
    def section() -> None:
        still_active = active
        with friendly_errors():
            still_active = draw()
        if still_active != active and _in_fragment_rerun():
            st.rerun()

    section()
    if idle is not None and not active:
        _watch(idle, seen)


def unless_ticked(table_key: str, read: Callable[[], T]) -> T | None:
    """An idle page's read, or None (hold the page as it is) while the table drawn under this key has rows ticked."""
    return None if ticked(table_key) else read()


def ticked(table_key: str) -> bool:
    """Whether the table drawn under this key has rows ticked: ticks are row positions, which a redraw with a new run,
    or a live run's new rank, would move onto other runs. Read from the table's own selection, which Streamlit drops
    with the table (a flag of our own outlived the page, and held an experiment with no runs for good)."""
    state = st.session_state.get(table_key)
    return bool(state and state.get("selection", {}).get("rows"))


def paused_for_ticks(going: int) -> None:
    st.caption(f"{plural(going, 'run')} queued or running: refreshing is paused while runs are ticked.")


def _watch(idle: Callable[[], object], drawn: object) -> None:
    baseline = [drawn]  # None while the page held (ticks): then the first read after the ticks are gone

    @st.fragment(run_every=settings().idle_check_interval)  # one small read each time
    def check() -> None:
        if not _in_fragment_rerun():
            return
        try:
            now = idle()
        except TuneDeckError:
            return  # the store out of reach for a moment: the next check tries again; the page keeps what it shows
        if now is None:
            return
        if baseline[0] is None:
            baseline[0] = now
        elif now != baseline[0]:
            st.rerun()

    check()


def fresh(value: T, read: Callable[[], T]) -> T:
    """What the page already read for this run, or a new read when a timed refresh redraws only the live section."""
    return read() if _in_fragment_rerun() else value


def _in_fragment_rerun() -> bool:
    context = get_script_run_ctx()
    return bool(context and context.fragment_ids_this_run)


def flash(message: str, warning: bool = False) -> None:
    """Show what an action did (or, as a warning, why it did nothing) after the rerun that follows it."""
    st.session_state["_flash"] = (message, warning)


def show_flash() -> None:
    message, warning = st.session_state.pop("_flash", (None, False))
    if message:
        (st.warning if warning else st.success)(plain(message))  # it names what the user named: shown as typed


def show_error(error: TuneDeckError, about: str | None = None) -> None:
    """One of our errors as a sentence; the names in it (a user's) shown as typed, not read as Markdown. `about`:
    the field it is about, said first unless the message names it itself ("Dataset: no file x", not
    "Dataset: dataset x is outside ...")."""
    st.error(plain(sentence(labelled(about, str(error)) if about else str(error))))


def show_validation(error: ValidationError, labels: dict[str, str] | None = None) -> None:
    """One sentence per field: 'Name is too long: at most 200 characters are allowed, and this one has 10,000.'"""
    if not error.field_errors:
        show_error(error)
        return
    for field, message in error.field_errors.items():
        label = (labels or {}).get(field) or _field_label(field)
        st.error(plain(sentence(labelled(label, message))))


def _field_label(field: str) -> str:
    """'target_modules.0' -> 'target modules (item 1)': the name a form shows, and which entry of a list."""
    name, *inside = field.split(".")
    parts = [f"(item {int(part) + 1})" if part.isdigit() else field_label(part) for part in inside]
    return " ".join([field_label(name), *parts])


ACRONYMS = {"lora": "LoRA", "lr": "LR"}


def field_label(name: str) -> str:
    """'lora_rank' -> 'LoRA rank', 'lr_schedule' -> 'LR schedule': a setting as a form names it."""
    return " ".join(ACRONYMS.get(word, word) for word in name.split("_"))


def sentence(text: str) -> str:
    """A message of ours as a sentence shown alone: capital first, one full stop (none after ? or !)."""
    return full_stop(capitalized(text))


def full_stop(text: str) -> str:
    """One full stop at the end, none after ? or ! (not "did you mean x?.")."""
    return text if text.endswith(("?", "!")) else text.rstrip(".") + "."


def capitalized(text: str) -> str:
    """Our messages start in lower case to be joined into others; shown alone, they start as sentences."""
    text = text.strip()
    return text[:1].upper() + text[1:]


def restore_form(experiment, key: str) -> None:
    """Restore a deleted experiment under its name or, where a live one took that, under another typed here; said
    after the rerun (flash)."""
    name = st.text_input(
        "Restore as", value=experiment.name, key=f"{key}_as_{experiment.id}", help="A new name, if a live experiment took this one."
    )
    if st.button("Restore", key=key, icon=":material/restore_from_trash:"):
        renamed = name.strip() != experiment.name
        try:
            store().restore_experiment(experiment.id, name=name if renamed else None)
        except ValidationError as error:
            show_validation(error, labels={"name": "Restore as"})
        except TuneDeckError as error:
            show_error(error)
        else:
            flash(f"Restored {quoted(experiment.name)}" + (f" as {quoted(name.strip())}." if renamed else "."))
            st.rerun()
