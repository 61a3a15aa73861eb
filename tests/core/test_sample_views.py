"""What the pages show of prediction samples: right and wrong, changes between evaluations, runs side by side."""

import json

import polars as pl

from core.presenters import fold
from core.sample_rows import SAMPLE_COLUMNS
from core.samples import (
    ALL,
    BEST_WRONG,
    BROKE,
    CHANGED,
    DISAGREE,
    DISAGREE_STYLE,
    FIXED,
    NEW,
    SAME,
    WRONG_STYLE,
    agreement,
    agreement_caption,
    best_wrong_other_right,
    cell_styles,
    changes_since,
    examples_in_view,
    only_wrong,
    previous_step,
    sample_lines,
    side_by_side,
    step_summary,
    step_table,
)


def samples(run_id: int, step: int, answers: dict[str, str], reference: dict[str, str] | None = None, **extra) -> pl.DataFrame:
    """Hand-made samples: example -> prediction; the reference defaults to 'pos' for every example."""
    reference = reference or {example: "pos" for example in answers}
    return pl.DataFrame(
        {
            "run_id": run_id,
            "step": step,
            "example_id": list(answers),
            "position": list(range(len(answers))),
            "input": [f"input {example}" for example in answers],
            "reference": [reference[example] for example in answers],
            "prediction": list(answers.values()),
            "score": [float(prediction == reference[example]) for example, prediction in answers.items()],
            "correct": [None] * len(answers),
            "extra": [json.dumps(extra)] * len(answers),
        },
        schema=SAMPLE_COLUMNS,
    )


def test_a_sample_is_right_by_the_trainers_word_else_by_matching_the_reference():
    rows = samples(1, 0, {"a": "pos", "b": "neg", "c": " pos "}).with_columns(
        correct=pl.Series([None, True, None], dtype=pl.Boolean)
    )
    assert only_wrong(rows)["example_id"].to_list() == []
    unjudged = rows.with_columns(reference=pl.lit(None, pl.String), correct=pl.lit(None, pl.Boolean))
    assert only_wrong(unjudged).is_empty()


def test_changes_since_the_previous_evaluation_say_fixed_broke_changed_same_and_new():
    before = samples(1, 10, {"a": "neg", "b": "pos", "c": "x", "d": "pos"})
    now = samples(1, 20, {"a": "pos", "b": "neg", "c": "y", "d": "pos", "e": "pos"})

    changed = changes_since(now, before)

    assert changed["change"].to_list() == [FIXED, BROKE, CHANGED, SAME, NEW]
    assert changed["previous"].to_list() == ["neg", "pos", "x", "pos", None]
    assert changed["score_change"].to_list() == [1.0, -1.0, 0.0, 0.0, None]
    assert step_summary(changed, 10) == "5 examples: 3 right, 2 wrong; since step 10: 1 fixed, 1 broke, 1 changed otherwise."
    assert "; since step 8,990: " in step_summary(changed, 8990)  # as the page's "Step 9,000:" writes a step


def test_the_first_evaluation_has_only_new_examples():
    changed = changes_since(samples(1, 0, {"a": "pos"}), None)
    assert changed["change"].to_list() == [NEW]
    assert step_summary(changed, None) == "1 example: 1 right, 0 wrong (the first evaluation with samples)."


def test_previous_step_is_the_evaluation_before():
    assert previous_step([0, 10, 20], 20) == 10
    assert previous_step([0, 10, 20], 0) is None


def test_long_texts_are_folded_in_the_table_with_the_confidence_out_of_extra():
    long = "word " * 100
    rows = samples(1, 0, {"a": long.strip()}, {"a": "pos"}, confidence=0.75)

    table = step_table(changes_since(rows, None))

    assert len(table["prediction"][0]) == 200 and table["prediction"][0].endswith("…")
    assert table["confidence"].to_list() == [0.75]
    assert fold("short") == "short" and fold(None) is None


def side_by_side_runs() -> pl.DataFrame:
    return pl.concat(
        [
            samples(1, 30, {"a": "pos", "b": "neg", "c": "pos", "d": "neg"}),
            samples(2, 30, {"a": "pos", "b": "pos", "c": "neg", "d": "neg"}),
            samples(3, 20, {"a": "pos", "b": "pos", "c": "pos", "d": "neg"}),
        ]
    )


def test_side_by_side_has_one_row_per_example_one_column_per_run_and_flags_disagreement():
    table, flags = side_by_side(side_by_side_runs(), {1: "one (#1)", 2: "two (#2)", 3: "three (#3)"})

    assert table.columns == ["example_id", "input", "reference", "one (#1)", "two (#2)", "three (#3)", "agree"]
    assert table["example_id"].to_list() == ["a", "b", "c", "d"]
    assert table["two (#2)"].to_list() == ["pos", "pos", "neg", "neg"]
    assert table["agree"].to_list() == [True, False, False, True]
    assert flags["one (#1)"].to_list() == [True, False, True, False]


def test_disagreeing_cells_are_highlighted_and_wrong_answers_marked():
    table, flags = side_by_side(side_by_side_runs(), {1: "one", 2: "two", 3: "three"})

    styles = cell_styles(table, flags)

    assert styles["one"].to_list() == ["", f"{DISAGREE_STYLE}; {WRONG_STYLE}", DISAGREE_STYLE, WRONG_STYLE]
    assert styles["two"].to_list() == ["", DISAGREE_STYLE, f"{DISAGREE_STYLE}; {WRONG_STYLE}", WRONG_STYLE]


def test_examples_the_best_run_gets_wrong_and_another_run_gets_right():
    assert best_wrong_other_right(side_by_side_runs(), best_run_id=1) == ["b"]
    assert best_wrong_other_right(side_by_side_runs(), best_run_id=2) == ["c"]
    assert best_wrong_other_right(side_by_side_runs(), best_run_id=3) == []


def test_each_view_of_the_side_by_side_keeps_its_examples():
    rows = side_by_side_runs()
    table, _ = side_by_side(rows, {1: "one", 2: "two", 3: "three"})

    def kept(view: str, best: int | None = 1) -> list[str]:
        return table.filter(examples_in_view(table, rows, view, best))["example_id"].to_list()

    assert kept(ALL) == ["a", "b", "c", "d"]
    assert kept(DISAGREE) == ["b", "c"]
    assert kept(BEST_WRONG) == ["b"]
    assert kept(BEST_WRONG, best=None) == []


def test_agreement_counts_over_the_examples_every_run_answered():
    rows = pl.concat([side_by_side_runs(), samples(1, 30, {"e": "pos"}).with_columns(position=pl.lit(9, pl.Int32))])

    counts = agreement(rows)

    assert (counts.examples, counts.all_agree, counts.disagree, counts.all_right, counts.all_wrong) == (4, 2, 2, 1, 1)
    assert counts.right_per_run == {1: 2, 2: 2, 3: 3}


def test_an_example_not_every_run_answered_neither_agrees_nor_disagrees():
    """Runs of two experiments answer different examples: one run's answer alone was ticked "agree"."""
    rows = pl.concat([samples(1, 10, {"a": "pos", "b": "neg"}), samples(2, 10, {"a": "pos", "z": "pos"})])

    table, _ = side_by_side(rows, {1: "one", 2: "two"})

    assert dict(zip(table["example_id"], table["agree"], strict=True)) == {"a": True, "b": None, "z": None}
    assert table.filter(examples_in_view(table, rows, DISAGREE, None))["example_id"].to_list() == []


def test_the_agreement_caption_says_when_the_runs_share_no_example_and_else_follows_the_tables_order():
    apart = pl.concat([samples(1, 10, {"a": "pos"}), samples(2, 10, {"z": "pos"})])
    shared = pl.concat([samples(1, 10, {"a": "pos", "b": "neg"}), samples(2, 10, {"a": "pos", "b": "pos"})])

    assert agreement_caption(agreement(apart), {1: "one", 2: "two"}) == (
        "These runs have no example in common (each was evaluated on examples of its own), so none is counted."
    )
    assert agreement_caption(agreement(shared), {2: "two", 1: "one"}) == (
        "Right answers per run, on the 2 examples every run answered: two: 2, one: 1."
    )


def test_sample_lines_are_json_with_extra_parsed():
    (line,) = sample_lines(samples(1, 0, {"a": "<script>x</script>"}, confidence=0.5))
    assert json.loads(line)["extra"] == {"confidence": 0.5}
    assert json.loads(line)["prediction"] == "<script>x</script>"
