"""Prediction samples on the run and compare pages, through AppTest, on hand-made samples."""

import pytest

from core.samples import DISAGREE_STYLE
from core.writer import MetricWriter
from tests.ui.conftest import SAMPLE

REFERENCE = {"a": "pos", "b": "neg", "c": "pos", "d": "neg"}


def rows(answers: dict[str, str]) -> list[dict]:
    return [
        {"example_id": example, "input": f"review {example}", "reference": REFERENCE[example], "prediction": answer}
        for example, answer in answers.items()
    ]


@pytest.fixture
def runs(app_store):
    """Three completed runs of one experiment; run one is best by eval_loss."""
    store = app_store
    experiment_id = store.create_experiment({"name": "samples", "dataset": SAMPLE})
    ids = [
        store.create_run(experiment_id, {"learning_rate": lr, "epochs": 1}, name=name)
        for lr, name in ((0.01, "one"), (0.02, "two"), (0.03, "three"))
    ]
    with MetricWriter(store) as writer:
        for run_id, loss in zip(ids, (0.2, 0.5, 0.6), strict=True):
            writer.log(run_id, 30, {"eval_loss": loss})
    for run_id in ids:
        store.mark_running(run_id, worker="host:1")
        store.complete_run(run_id)
    one, two, three = ids
    store.log_samples(one, 10, rows({"a": "neg", "b": "neg", "c": "neg", "d": "pos"}))
    store.log_samples(one, 30, rows({"a": "pos", "b": "pos", "c": "pos", "d": "neg"}))
    store.log_samples(two, 30, rows({"a": "pos", "b": "neg", "c": "neg", "d": "neg"}))
    store.log_samples(three, 20, rows({"a": "pos", "b": "neg", "c": "pos", "d": "neg"}))
    return ids


def table(app, column: str):
    """The first table on the page that has this column."""
    return next(frame for frame in app.dataframe if column in frame.value.columns)


def test_the_run_page_shows_the_last_evaluations_answers_and_how_each_changed(open_page, runs):
    app = open_page("pages/run.py", run=str(runs[0]))

    assert app.selectbox(key="sample_step").value == "latest"
    assert app.selectbox(key="sample_step").options == ["latest", "step 30", "step 10"]
    shown = table(app, "change").value
    assert shown["example"].tolist() == ["a", "b", "c", "d"]
    assert shown["change"].tolist() == ["fixed", "broke", "fixed", "fixed"]
    assert shown["before"].tolist() == ["neg", "neg", "neg", "pos"]
    assert "Step 30: 4 examples: 3 right, 1 wrong; since step 10: 3 fixed, 1 broke, 0 changed otherwise." in [
        c.value for c in app.caption
    ]


def test_the_run_page_filters_to_wrong_answers_and_goes_back_to_an_earlier_evaluation(open_page, runs):
    app = open_page("pages/run.py", run=str(runs[0]))

    app.toggle(key="samples_wrong").set_value(True).run()
    assert table(app, "change").value["example"].tolist() == ["b"]

    app.selectbox(key="sample_step").set_value(10).run()
    assert table(app, "change").value["example"].tolist() == ["a", "c", "d"]
    assert set(table(app, "change").value["change"]) == {"new"}


def test_a_run_without_samples_says_so(open_page, app_store, runs):
    experiment_id = app_store.get_run(runs[0]).experiment_id
    bare = app_store.create_run(experiment_id, {"epochs": 1})

    app = open_page("pages/run.py", run=str(bare))

    assert any("No prediction samples yet" in c.value for c in app.caption)


def test_compare_puts_each_runs_answer_beside_the_reference_and_highlights_disagreement(open_page, runs):
    app = open_page("pages/compare.py", runs=",".join(map(str, runs)))

    side = table(app, "agree")
    frame = side.value
    one, two, three = (f"{name} (#{run_id})" for name, run_id in zip(("one", "two", "three"), runs, strict=True))
    assert frame.columns.tolist() == ["example_id", "input", "reference", one, two, three, "agree"]
    assert frame[one].tolist() == ["pos", "pos", "pos", "neg"]
    assert frame["agree"].tolist() == [True, False, False, True]
    assert DISAGREE_STYLE.split(": ")[1] in side.proto.arrow_data.styler.styles
    metrics = {m.label: m.value for m in app.metric}
    assert (metrics["all agree"], metrics["disagree"], metrics["all right"]) == ("2", "2", "2")


def test_compare_filters_to_disagreements_and_to_where_the_best_run_is_wrong_and_another_right(open_page, runs):
    app = open_page("pages/compare.py", runs=",".join(map(str, runs)))

    app.segmented_control(key="samples_view").set_value("Runs disagree").run()
    assert table(app, "agree").value["example_id"].tolist() == ["b", "c"]

    app.segmented_control(key="samples_view").set_value("Best run wrong, another right").run()
    assert table(app, "agree").value["example_id"].tolist() == ["b"]
    assert any(c.value.startswith("Best run by eval") and "one" in c.value for c in app.caption)
