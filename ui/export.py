"""Download buttons for the runs table and the full curves of chosen runs; the file is made only when clicked."""

from collections.abc import Callable

import polars as pl
import streamlit as st

from core import export
from core.presenters import plural
from ui.common import fold, store


def export_fold(runs: Callable[[], pl.DataFrame], count: int, chosen: list[int], key: str) -> None:
    """`runs`: the search frame of the `count` runs shown (what the table export holds), read only when the file is
    asked for; `chosen`: runs whose curves to export."""
    section = fold("Export", f"{key}_open", icon=":material/download:")
    if not section.open:
        return
    with section:
        st.caption(
            f"The runs table holds the {plural(count, 'run')} shown: params, tags and each metric's last, min and "
            "max. Curves hold every logged point of the runs ticked."
        )
        too_many = len(chosen) > export.MAX_CURVE_RUNS
        for column, kind in zip(st.columns(len(export.FORMATS)), export.FORMATS, strict=True):
            column.download_button(
                f"Runs table ({export.LABELS[kind]})",
                data=lambda kind=kind: export.file_bytes(export.runs_table(runs()), kind),
                file_name=f"tunedeck-runs.{kind}",
                mime=export.MIME[kind],
                key=f"{key}_runs_{kind}",
                icon=":material/table:",
            )
            column.download_button(
                f"Curves of {plural(len(chosen), 'run')} ({export.LABELS[kind]})",
                data=lambda kind=kind: _curves(chosen, kind),
                file_name=f"tunedeck-curves.{kind}",
                mime=export.MIME[kind],
                key=f"{key}_curves_{kind}",
                icon=":material/show_chart:",
                disabled=not chosen or too_many,
            )
        if too_many:
            st.caption(f"Tick at most {export.MAX_CURVE_RUNS} runs to export their curves.")
        elif not chosen:
            st.caption("Tick runs in the table to export their curves.")


def _curves(chosen: list[int], kind: export.Format) -> bytes:
    export.check_curve_runs(chosen)
    with store().reading():
        names = {run.id: run.name for run in store().get_runs(chosen)}
        series = store().get_metric_series(chosen, None, max_points=None)
    return export.file_bytes(export.curves(series, names), kind)
