"""Prediction samples in the store: logged per run and step, replaced idempotently, bounded in size."""

import json

import polars as pl
import pytest

from core import tracking
from core.errors import NotFoundError, ValidationError
from core.sample_rows import MAX_CALL_TEXT, MAX_ROWS, MAX_TEXT


def rows(prefix: str = "p", n: int = 3) -> list[dict]:
    return [
        {
            "example_id": i,
            "input": f"text {i}",
            "reference": "pos",
            "prediction": f"{prefix}{i}",
            "score": 0.5,
            "extra": {"confidence": 0.9},
        }
        for i in range(n)
    ]


@pytest.fixture
def run_id(store, make_experiment, make_run):
    return make_run(make_experiment(), status="running")


def test_samples_logged_at_two_steps_read_back_per_step_in_the_order_logged(store, run_id):
    store.log_samples(run_id, 10, rows("a"))
    store.log_samples(run_id, 20, list(reversed(rows("b"))))

    at_20 = store.get_samples([run_id], step=20)
    assert at_20["prediction"].to_list() == ["b2", "b1", "b0"]
    assert at_20["example_id"].to_list() == ["2", "1", "0"]
    assert json.loads(at_20["extra"][0]) == {"confidence": 0.9}
    assert store.get_samples([run_id])["step"].to_list() == [10, 10, 10, 20, 20, 20]
    assert store.list_sample_steps(run_id) == [10, 20]


def test_logging_the_same_run_step_and_example_again_replaces_it(store, run_id):
    store.log_samples(run_id, 5, rows("old"))
    store.log_samples(run_id, 5, rows("old"))
    store.log_samples(run_id, 5, [{"example_id": "1", "input": "text 1", "prediction": "new"}])

    at_5 = store.get_samples([run_id], step=5)
    assert at_5.height == 3
    assert dict(zip(at_5["example_id"], at_5["prediction"], strict=True)) == {"0": "old0", "1": "new", "2": "old2"}


def test_samples_of_several_runs_come_back_together_and_a_run_without_any_reads_empty(store, make_experiment, make_run):
    experiment_id = make_experiment()
    first, second, empty = (make_run(experiment_id, status="running") for _ in range(3))
    store.log_samples(first, 1, rows("x", 2))
    store.log_samples(second, 1, rows("y", 2))

    both = store.get_samples([first, second, empty], step=1)
    assert both.group_by("run_id").len().sort("run_id")["len"].to_list() == [2, 2]
    assert store.get_samples([empty]).is_empty()
    assert store.get_samples([empty]).columns == both.columns
    assert store.list_sample_steps(empty) == []


def test_each_runs_latest_samples_come_back_in_one_request(store, make_experiment, make_run):
    experiment_id = make_experiment()
    early, late, empty = (make_run(experiment_id, status="running") for _ in range(3))
    store.log_samples(early, 10, rows("e10", 2))
    store.log_samples(early, 20, rows("e20", 2))
    store.log_samples(late, 5, rows("l5", 3))
    store.log_samples(late, 300, rows("l300", 1))

    latest = store.get_latest_samples([late, early, empty])

    assert latest.select("run_id", "step", "prediction").rows() == [
        (early, 20, "e200"),
        (early, 20, "e201"),
        (late, 300, "l3000"),
    ]
    assert latest.columns == store.get_samples([early]).columns
    assert store.get_latest_samples([empty]).is_empty()
    with pytest.raises(ValidationError, match="run ID must be a positive whole number"):
        store.get_latest_samples([0])


def test_the_sdk_logs_samples_to_its_run(store):
    with tracking.start_run("sdk samples", store=store) as run:
        run.log_samples(rows("s", 2), step=3)

    assert store.get_samples([run.id], step=3)["prediction"].to_list() == ["s0", "s1"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([{"example_id": 1, "input": "x" * (MAX_TEXT + 1), "prediction": "p"}], "at most 10,000 characters"),
        ([{"example_id": 1, "input": "x", "prediction": "p", "colour": "red"}], "not a known setting"),
        ([{"example_id": 1, "input": "x"}], "prediction is required"),
        ([{"example_id": "", "input": "x", "prediction": "p"}], "example_id must not be empty"),
        ([{"example_id": 1, "input": "x", "prediction": "p", "score": float("nan")}], "finite"),
        ([{"example_id": 1, "input": "x", "prediction": "p", "extra": {"blob": "x" * 3000}}], "extra is too large"),
        (
            [{"example_id": 1, "input": "a", "prediction": "p"}, {"example_id": "1", "input": "b", "prediction": "q"}],
            "appears twice",
        ),
        ([{"example_id": i, "input": "x", "prediction": "p"} for i in range(MAX_ROWS + 1)], "at most 1,000 rows"),
        (
            [{"example_id": i, "input": "x" * 9_000, "prediction": "p" * 9_000} for i in range(MAX_CALL_TEXT // 18_000 + 1)],
            "one call takes at most 2,000,000",
        ),
        ({"example_id": 1}, "must be a list of rows"),
    ],
)
def test_bad_samples_get_a_clear_message_and_leave_the_store_unchanged(store, backing, unchanged, bad, message):
    run_id = backing.list_runs(backing.find_experiment("baseline").id)[0].id
    with pytest.raises(ValidationError, match=message):
        store.log_samples(run_id, 1, bad)
    unchanged()


def test_samples_for_an_unknown_run_or_a_negative_step_are_refused(store, run_id):
    with pytest.raises(NotFoundError, match="no run with ID 999"):
        store.log_samples(999, 1, rows())
    with pytest.raises(ValidationError, match="step must be a whole number from 0"):
        store.log_samples(run_id, -1, rows())
    assert store.get_samples([run_id]).is_empty()


def test_samples_stay_text_exactly_as_logged(store, run_id):
    hostile = "<script>alert('x')</script> **bold** \n\ttab ünïcode"
    store.log_samples(run_id, 1, [{"example_id": "h", "input": hostile, "reference": None, "prediction": hostile}])

    got = store.get_samples([run_id], step=1).row(0, named=True)
    assert got["input"] == got["prediction"] == hostile
    assert got["reference"] is None
    assert isinstance(store.get_samples([run_id]), pl.DataFrame)
