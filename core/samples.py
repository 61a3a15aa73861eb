"""Views of prediction samples, as pure Polars transforms the pages draw (no store, no Streamlit).

A sample is *right* when the trainer said so (`correct`), else when its prediction equals the
reference (ignoring surrounding spaces); without either it is neither right nor wrong (null).
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from core.entities import RunComparison
from core.presenters import each, fold

# How an example's answer moved since the previous evaluation.
NEW, FIXED, BROKE, CHANGED, SAME = "new", "fixed", "broke", "changed", "same"
DISAGREE_STYLE = "background-color: #fef3c7"  # amber: the runs answered this example differently
WRONG_STYLE = "color: #b91c1c"  # red text: this run's answer is wrong
OPTIONAL_COLUMNS = ("reference", "before", "confidence", "score", "score_change")


def right() -> pl.Expr:
    judged = pl.col("prediction").str.strip_chars() == pl.col("reference").str.strip_chars()
    return pl.coalesce(pl.col("correct"), judged).alias("right")


def judged(samples: pl.DataFrame) -> pl.DataFrame:
    """The samples with a `right` column (true, false or null)."""
    return samples.with_columns(right())


def only_wrong(samples: pl.DataFrame) -> pl.DataFrame:
    """The answers judged wrong; an unjudged one (no reference) is not."""
    return judged(samples).filter(pl.col("right") == False)  # noqa: E712 - null (unjudged) is neither


def changes_since(current: pl.DataFrame, previous: pl.DataFrame | None) -> pl.DataFrame:
    """The samples at one step with how each changed since the previous evaluation: `change` (new, fixed, broke,
    changed, same), the `previous` prediction and `score_change`."""
    now = judged(current)
    if previous is None or previous.is_empty():
        return now.with_columns(change=pl.lit(NEW), previous=pl.lit(None, pl.String), score_change=pl.lit(None, pl.Float64))
    before = judged(previous).select(
        "example_id", previous=pl.col("prediction"), previous_score=pl.col("score"), previous_right=pl.col("right")
    )
    joined = now.join(before, on="example_id", how="left", maintain_order="left")
    change = (
        pl.when(pl.col("previous").is_null())
        .then(pl.lit(NEW))
        .when(pl.col("right") & (pl.col("previous_right") == False))  # noqa: E712
        .then(pl.lit(FIXED))
        .when((pl.col("right") == False) & pl.col("previous_right"))  # noqa: E712
        .then(pl.lit(BROKE))
        .when(pl.col("prediction") != pl.col("previous"))
        .then(pl.lit(CHANGED))
        .otherwise(pl.lit(SAME))
    )
    return joined.with_columns(change=change, score_change=pl.col("score") - pl.col("previous_score")).drop(
        "previous_score", "previous_right"
    )


def step_summary(changed: pl.DataFrame, previous: int | None) -> str:
    """'32 examples: 27 right, 5 wrong; since step 10: 3 fixed, 1 broke, 2 changed otherwise.'"""
    rows = changed.height
    right_count = int(changed["right"].sum() or 0)
    wrong_count = changed.filter(pl.col("right") == False).height  # noqa: E712
    text = f"{rows} example{'s' if rows != 1 else ''}: {right_count} right, {wrong_count} wrong"
    if previous is None:
        return text + " (the first evaluation with samples)."
    moves = {name: changed.filter(pl.col("change") == name).height for name in (FIXED, BROKE, CHANGED)}
    return text + f"; since step {previous:,}: {moves[FIXED]} fixed, {moves[BROKE]} broke, {moves[CHANGED]} changed otherwise."


def previous_step(steps: list[int], step: int) -> int | None:
    earlier = [s for s in steps if s < step]
    return earlier[-1] if earlier else None


def step_table(changed: pl.DataFrame) -> pl.DataFrame:
    """What the run page shows per example: texts folded, the change, confidence out of extra; a column no
    example has a value in (no scores logged, say) is left out."""
    table = changed.select(
        pl.col("example_id").alias("example"),
        *(each(changed[name], fold, pl.String) for name in ("input", "reference", "prediction")),
        "right",
        "change",
        each(changed["previous"], fold, pl.String).alias("before"),
        each(changed["extra"], _confidence, pl.Float64).alias("confidence"),
        "score",
        "score_change",
    )
    empty = [name for name in OPTIONAL_COLUMNS if table[name].null_count() == table.height]
    return table.drop(empty)


def _confidence(extra: str) -> float | None:
    value = json.loads(extra or "{}").get("confidence")
    return float(value) if isinstance(value, int | float) else None


# -- several runs side by side ---------------------------------------------------------------------
@dataclass(frozen=True)
class Agreement:
    """How the compared runs' answers relate, over the examples they all answered."""

    examples: int
    all_agree: int
    disagree: int
    all_right: int
    all_wrong: int
    right_per_run: dict[int, int]


def side_by_side(samples: pl.DataFrame, labels: dict[int, str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One row per example (in the first run's order), its input and reference, and one column per run (named by
    `labels`, in that order) with the run's prediction; then the same shape with each run's `right` flag, and an
    `agree` column: whether every run gave the same prediction (null where some run has no answer for it)."""
    rows = judged(samples).with_columns(pl.col("run_id").replace_strict(labels, return_dtype=pl.String).alias("run"))
    runs = rows["run_id"].n_unique()
    order = rows.group_by("example_id", maintain_order=True).agg(
        pl.col("input").first(), pl.col("reference").first(), pl.col("position").min()
    )
    names = [labels[run_id] for run_id in labels]
    wide = rows.pivot("run", index="example_id", values="prediction").select("example_id", *_present(rows, names))
    flags = rows.pivot("run", index="example_id", values="right").select("example_id", *_present(rows, names))
    agree = rows.group_by("example_id").agg(
        agree=pl.when(pl.col("run_id").n_unique() == runs).then(pl.col("prediction").n_unique() == 1)
    )
    table = order.join(wide, on="example_id", how="left").join(agree, on="example_id", how="left")
    table = table.sort("position", "example_id").drop("position")
    return table, table.select("example_id").join(flags, on="example_id", how="left", maintain_order="left")


def _present(rows: pl.DataFrame, names: list[str]) -> list[str]:
    found = set(rows["run"].unique().to_list())
    return [name for name in names if name in found]


def cell_styles(table: pl.DataFrame, flags: pl.DataFrame) -> pl.DataFrame:
    """CSS per run cell of `side_by_side`'s table: amber where the runs disagree, red text where a run is wrong."""
    runs = [name for name in flags.columns if name != "example_id"]
    disagree = ~table["agree"].fill_null(True)
    return pl.DataFrame(
        {
            name: [
                "; ".join(style for style, on in ((DISAGREE_STYLE, differs), (WRONG_STYLE, is_right is False)) if on)
                for differs, is_right in zip(disagree, flags[name], strict=True)
            ]
            for name in runs
        }
    )


def best_run(comparison: RunComparison, primary: str) -> int | None:
    """The compared run that is best by the experiment's primary metric, if any run logged it."""
    return next((row.best_run_id for row in comparison.metrics if row.key == primary), None)


ALL, DISAGREE, BEST_WRONG = "All examples", "Runs disagree", "Best run wrong, another right"  # the views of the examples


def examples_in_view(table: pl.DataFrame, samples: pl.DataFrame, view: str, best_run_id: int | None) -> pl.Series:
    """Which rows of side_by_side()'s table a view keeps: all, those the runs disagree on, or those the best run got
    wrong while another got right (none without a best run)."""
    if view == DISAGREE:
        return table["agree"] == False  # noqa: E712
    if view == BEST_WRONG:
        wanted = best_wrong_other_right(samples, best_run_id) if best_run_id is not None else []
        return table["example_id"].is_in(wanted)
    return pl.Series([True] * table.height)


def best_wrong_other_right(samples: pl.DataFrame, best_run_id: int) -> list[str]:
    """Examples the best run (by the primary metric) gets wrong while another run gets right: where to look first."""
    rows = judged(samples)
    best_wrong = rows.filter((pl.col("run_id") == best_run_id) & (pl.col("right") == False))["example_id"]  # noqa: E712
    other_right = rows.filter((pl.col("run_id") != best_run_id) & pl.col("right"))["example_id"]
    wanted = set(best_wrong.to_list()) & set(other_right.to_list())
    return [example for example in rows["example_id"].unique(maintain_order=True).to_list() if example in wanted]


def agreement_caption(counts: Agreement, labels: dict[int, str]) -> str:
    """What the counts above the side-by-side table cover, said before the colours are explained."""
    if not counts.examples:
        return "These runs have no example in common (each was evaluated on examples of its own), so none is counted."
    per_run = ", ".join(f"{label}: {counts.right_per_run.get(run_id, 0)}" for run_id, label in labels.items())  # table order
    return f"Right answers per run, on the {counts.examples:,} examples every run answered: {per_run}."


def agreement(samples: pl.DataFrame) -> Agreement:
    """Counts over the examples every run answered."""
    rows = judged(samples)
    runs = rows["run_id"].n_unique()
    per_example = (
        rows.group_by("example_id")
        .agg(
            answered=pl.col("run_id").n_unique(),
            distinct=pl.col("prediction").n_unique(),
            right=pl.col("right").sum(),
            wrong=(pl.col("right") == False).sum(),  # noqa: E712
        )
        .filter(pl.col("answered") == runs)
    )
    shared = rows.filter(pl.col("example_id").is_in(per_example["example_id"].implode()))
    per_run = shared.group_by("run_id").agg(pl.col("right").sum())
    return Agreement(
        examples=per_example.height,
        all_agree=per_example.filter(pl.col("distinct") == 1).height,
        disagree=per_example.filter(pl.col("distinct") > 1).height,
        all_right=per_example.filter(pl.col("right") == runs).height,
        all_wrong=per_example.filter(pl.col("wrong") == runs).height,
        right_per_run=dict(zip(per_run["run_id"].to_list(), per_run["right"].to_list(), strict=True)),
    )


def sample_lines(samples: pl.DataFrame) -> Iterator[str]:
    """Each sample as one JSON object per line (extra parsed), for the command line."""
    for row in samples.to_dicts():
        row["extra"] = json.loads(row["extra"] or "{}")
        yield json.dumps(row, ensure_ascii=False)
