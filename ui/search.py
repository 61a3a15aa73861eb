"""The search box the experiment and Runs pages share, and the table of what it finds."""

import polars as pl
import streamlit as st

from core.divergence import find_diverged
from core.presenters import escape_outside_code
from core.search import SearchError
from core.search_compiler import compile_search
from core.search_views import SHOWN_LIMIT, results_frame
from ui.common import capitalized, data_table, open_on_select, rows_high, store, tags_column

PLACEHOLDER = 'e.g. metrics.eval_loss.min < 0.6 and (tags.base = "llama" or status = completed)'
HELP = (
    "Fields: `params.<name>`, `metrics.<key>` (last value; `.min` `.max` `.last`), `tags.<name>`, `status`, `name`, "
    "`experiment`, `created`, `duration`, `note`. Operators: `= != < <= > >=`, `in (…)`, `contains`, `and`, `or`, "
    '`not`, parentheses. Values: numbers, `"quoted text"`, words, dates like 2026-01-31, durations like 5m.'
)


def search_box(frame: pl.DataFrame, key: str, container=st) -> tuple[pl.DataFrame, tuple[str, ...] | None]:
    """The runs the query typed matches, and the columns it names; a query that cannot run is explained
    (the token at fault, a suggestion), every run stays, and the columns are None."""
    return apply_search(frame, search_text(key, container))


def search_text(key: str, container=st) -> str:
    return container.text_input("Search runs", placeholder=PLACEHOLDER, help=HELP, key=key, bind="query-params")


def apply_search(frame: pl.DataFrame, text: str) -> tuple[pl.DataFrame, tuple[str, ...] | None]:
    try:
        compiled = compile_search(text, frame.schema)
    except SearchError as error:
        st.error(escape_outside_code(capitalized(str(error))), icon=":material/search_off:")
        return frame, None
    return compiled.apply(frame), compiled.columns


def results_table(matched: pl.DataFrame, named: tuple[str, ...], key: str) -> list[int]:
    """Matched runs as a table; clicking a row opens its run, ticked rows come back as run IDs."""
    shown = matched["id"].head(SHOWN_LIMIT).to_list()
    diverged = find_diverged(store(), store().get_runs(shown)) if shown else set()
    table = results_frame(matched, named, diverged=diverged)
    event = data_table(
        table,
        live=True,
        on_select="rerun",
        selection_mode=["multi-row", "single-cell"],
        key=key,
        height=rows_high(table.height),  # 25 rows before a scroll bar, not ten
        column_order=[column for column in table.columns if column != "id"],
        column_config={
            "run": st.column_config.TextColumn("run", width="medium"),
            "experiment": st.column_config.TextColumn("experiment", width="medium"),
            "created": st.column_config.DatetimeColumn("created", format="MM-DD HH:mm", width="small"),
            "tags": tags_column(),
        },
    )
    open_on_select(event, table, "pages/run.py", "run")
    rows = event.selection.rows if event is not None else []
    return [int(table["id"][row]) for row in rows if row < table.height]
