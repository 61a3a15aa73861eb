"""Prediction samples on the run and compare pages. Texts from the data are drawn only as table cells and
code blocks (plain text), never as Markdown or HTML; long ones are folded in the table and read in full below."""

import polars as pl
import streamlit as st

from core import samples
from core.entities import Run
from core.presenters import each, fold, run_label
from core.store import TrackingStore
from ui.common import data_table, plain

LATEST = "latest"
TEXT_WIDTHS = {"example": "small", "input": "medium", "reference": "small", "prediction": "medium", "before": "small"}


def run_samples(store: TrackingStore, run_id: int, ended: bool = False) -> None:
    """One run's answers at a chosen evaluation (the last by default), and how each changed since the one before."""
    st.subheader("Predictions")
    steps = store.list_sample_steps(run_id)
    if not steps:
        st.caption(
            f"No prediction samples{'' if ended else ' yet'}: trainers log their answers on a fixed set of eval examples "
            "at each evaluation."
        )
        return
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    # "latest" alone: a label naming its step changed as the run trained, and the browser kept showing the old one
    chosen = left.selectbox(
        "Evaluation step",
        [LATEST, *reversed(steps)],
        key="sample_step",
        format_func=lambda option: "latest" if option == LATEST else f"step {option}",
        help="The latest follows a run while it trains; the caption below names its step.",
    )
    step = steps[-1] if chosen == LATEST or chosen not in steps else chosen
    wrong_only = right.toggle("Only wrong answers", key="samples_wrong")
    before = samples.previous_step(steps, step)
    current = store.get_samples([run_id], step=step)
    changed = samples.changes_since(current, store.get_samples([run_id], step=before) if before is not None else None)
    st.caption(f"Step {step:,}: {samples.step_summary(changed, before)}")
    if wrong_only:
        changed = samples.only_wrong(changed)
    table = samples.step_table(changed)
    data_table(
        table,
        key="samples_table",
        column_config={name: st.column_config.TextColumn(name, width=width) for name, width in TEXT_WIDTHS.items()}
        | {
            "right": st.column_config.CheckboxColumn("right", width="small"),
            "score_change": st.column_config.NumberColumn("score change", format="%.4g"),
        },
    )
    read_in_full(changed, ("input", "reference", "prediction", "previous"), key="sample_full")


def compare_samples(store: TrackingStore, runs: list[Run], best_run_id: int | None, primary: str) -> None:
    """The runs' answers on the same examples side by side (each at its last evaluation), disagreements highlighted."""
    st.subheader("Predictions side by side")
    rows = store.get_latest_samples([run.id for run in runs])
    if rows.is_empty():
        st.caption("No prediction samples from these runs yet.")
        return
    labels = {run.id: run_label(run) for run in runs if run.id in set(rows["run_id"].to_list())}
    counts = samples.agreement(rows)
    cells = st.columns(5)
    cells[0].metric("examples all answered", counts.examples)
    cells[1].metric("all agree", counts.all_agree)
    cells[2].metric("disagree", counts.disagree)
    cells[3].metric("all right", counts.all_right)
    cells[4].metric("all wrong", counts.all_wrong)
    st.caption(
        plain(samples.agreement_caption(counts, labels))
        + " Amber cells: the runs disagree; red text: a wrong answer; –: no answer. Each run is shown at its last evaluation."
    )
    table, flags = samples.side_by_side(rows, labels)
    view = st.segmented_control("Show", [samples.ALL, samples.DISAGREE, samples.BEST_WRONG], default=samples.ALL, key="samples_view")
    view = view or samples.ALL
    if view == samples.BEST_WRONG:
        if best_run_id is None or best_run_id not in labels:
            st.caption(plain(f"No best run by {primary} among these runs with samples."))
            return
        st.caption(plain(f"Best run by {primary}: {labels[best_run_id]}."))
    keep = samples.examples_in_view(table, rows, view, best_run_id)
    table, flags = table.filter(keep), flags.filter(keep)
    if table.is_empty():
        st.caption("No examples match.")
        return
    styles = samples.cell_styles(table, flags).to_pandas()
    shown = table.with_columns(each(table[name], fold, pl.String) for name in ("input", "reference", *labels.values()))
    shown = shown.with_columns(pl.col(name).fill_null("–") for name in labels.values() if name in shown.columns)
    st.dataframe(
        shown.to_pandas().style.apply(lambda column: styles[column.name], axis=0, subset=list(labels.values())),
        hide_index=True,
        key="side_by_side",
        column_config={"example_id": "example", "input": st.column_config.TextColumn("input", width="medium")}
        | {name: st.column_config.TextColumn(name, width="medium") for name in labels.values()}
        | {"agree": st.column_config.CheckboxColumn("agree", width="small")},
    )
    read_in_full(table, ("input", "reference", *labels.values()), key="side_full")


def read_in_full(frame: pl.DataFrame, columns: tuple[str, ...], key: str) -> None:
    """Pick an example to read its texts whole, as plain text."""
    chosen = st.selectbox("Read an example in full", frame["example_id"].to_list(), index=None, key=key, placeholder="example")
    if chosen is None:
        return
    row = frame.filter(pl.col("example_id") == chosen).row(0, named=True)
    for name in columns:
        if row.get(name) is not None:
            st.caption(name)
            st.code(row[name], language="text", wrap_lines=True)
