"""Tags and notes on experiments and runs, and the search frame that carries them: through the contract."""

from datetime import datetime

import polars as pl
import pytest

from core import tracking
from core.errors import NotFoundError, ValidationError
from core.search_compiler import search


def test_tags_are_added_replaced_and_removed_on_a_run(store, make_experiment, make_run):
    run_id = make_run(make_experiment())

    store.set_tags("run", run_id, {"base": "llama", "seed": 3, "fp16": True})
    store.set_tags("run", run_id, {"base": "mistral"})
    assert store.get_run(run_id).tags == {"base": "mistral", "fp16": "true", "seed": "3"}

    store.remove_tags("run", run_id, ["seed", "never-set"])
    assert store.get_run(run_id).tags == {"base": "mistral", "fp16": "true"}


def test_an_experiment_keeps_its_own_tags_and_note(store, make_experiment):
    experiment_id = make_experiment("tagged")

    store.set_tags("experiment", experiment_id, {"team": "nlp"})
    store.set_note("experiment", experiment_id, "  # Plan\n\nTry **rank 16**.  ")

    experiment = store.get_experiment(experiment_id)
    assert experiment.tags == {"team": "nlp"}
    assert experiment.note == "# Plan\n\nTry **rank 16**."
    assert store.list_experiments().items[0].tags == {"team": "nlp"}


def test_a_note_is_replaced_and_empty_text_removes_it(store, make_experiment, make_run):
    run_id = make_run(make_experiment())

    store.set_note("run", run_id, "first")
    store.set_note("run", run_id, "second")
    assert store.get_run(run_id).note == "second"

    store.set_note("run", run_id, "   ")
    assert store.get_run(run_id).note == ""


def test_a_note_is_trimmed_before_it_is_measured(store, make_experiment, make_run):
    """A note of exactly the most characters, with spaces around it, was refused as 20,004 long."""
    run_id = make_run(make_experiment())

    store.set_note("run", run_id, "  " + "x" * 20_000 + "\n\n")

    assert store.get_run(run_id).note == "x" * 20_000


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s, r: s.set_tags("adapter", r, {"a": "b"}), "tags and notes go on an experiment or a run, not 'adapter'"),
        (lambda s, r: s.set_tags("run", 999, {"a": "b"}), "no run with ID 999"),
        (lambda s, r: s.set_tags("experiment", 999, {"a": "b"}), "no experiment with ID 999"),
        (lambda s, r: s.set_tags("run", r, {}), "tags must be a non-empty dict"),
        (
            lambda s, r: s.set_tags("run", r, {"bad$key": "x"}),
            "the tag name may only contain unaccented letters, digits, spaces and _ . - / : @",
        ),
        (lambda s, r: s.set_tags("run", r, {"base": ["a"]}), "tag 'base' must be text, a number or true/false, not list"),
        (lambda s, r: s.set_tags("run", r, {"base": "x" * 1001}), "the value of tag “base” is too long: at most 1,000 characters"),
        (lambda s, r: s.set_tags("run", r, {"base": "two\nlines"}), "the value of tag “base” must not contain control characters"),
        (lambda s, r: s.set_tags("run", r, {f"k{i}": i for i in range(101)}), "set at most 100 tags at once"),
        (lambda s, r: s.set_tags("run", r, {"f": float("nan")}), "tag 'f' must be a finite number, not nan"),
        (lambda s, r: s.remove_tags("run", r, "base"), "name the tags to remove as a non-empty list"),
        (lambda s, r: s.set_note("run", r, "x" * 20_001), "the note is too long: at most 20,000 characters"),
        (lambda s, r: s.set_note("run", r, 42), "the note must be text"),
        (lambda s, r: s.set_note("run", True, "x"), "run ID must be a positive whole number"),
    ],
)
def test_bad_tags_and_notes_are_refused_and_change_nothing(store, unchanged, make_experiment, make_run, call, message):
    run_id = make_run(make_experiment())
    store.set_tags("run", run_id, {"kept": "yes"})

    with pytest.raises((ValidationError, NotFoundError)) as raised:
        call(store, run_id)

    assert str(raised.value).startswith(message)
    assert store.get_run(run_id).tags == {"kept": "yes"}


def test_a_refused_tag_leaves_the_store_exactly_as_it_was(store, unchanged):
    with pytest.raises(ValidationError):
        store.set_tags("run", 1, {"good": "x", "bad$": "y"})
    unchanged()


def test_the_sdk_sets_tags_on_its_run(store):
    with tracking.start_run("sdk tags", store=store) as run:
        run.set_tags({"base": "llama", "seed": 7})

    assert store.get_run(run.id).tags == {"base": "llama", "seed": "7"}


def test_the_search_frame_has_a_row_per_run_with_params_metrics_tags_and_note(store, make_experiment, make_run):
    experiment_id = make_experiment("sentiment")
    first = make_run(experiment_id, metrics={"eval_loss": [0.9, 0.4, 0.6]}, config={"learning_rate": 0.001, "lora_r": 8})
    second = make_run(experiment_id, status="queued", config={"learning_rate": 0.1})
    store.set_tags("experiment", experiment_id, {"base": "gpt2", "team": "nlp"})
    store.set_tags("run", first, {"base": "llama"})
    store.set_note("run", first, "the good one")

    frame = store.search_frame([experiment_id])

    assert frame["id"].to_list() == [second, first]
    row = frame.row(1, named=True)
    assert row["experiment"] == "sentiment" and row["status"] == "completed" and row["note"] == "the good one"
    assert (row["params.learning_rate"], row["params.lora_r"]) == (0.001, 8)
    assert (row["metrics.eval_loss.last"], row["metrics.eval_loss.min"], row["metrics.eval_loss.max"]) == (0.6, 0.4, 0.9)
    assert (row["tags.base"], row["tags.team"]) == ("llama", "nlp")  # its own tag wins; the experiment's fills in
    assert frame.row(0, named=True)["tags.base"] == "gpt2"
    assert isinstance(row["created"], datetime) and row["duration"] > 0


def test_searching_every_experiment_leaves_out_deleted_ones_unless_asked(store, make_experiment, make_run):
    kept, deleted = make_experiment("kept"), make_experiment("deleted")
    kept_run, deleted_run = make_run(kept), make_run(deleted)
    store.delete_experiment(deleted)

    assert store.search_frame()["id"].to_list() == [kept_run]
    assert store.search_frame([deleted])["id"].to_list() == [deleted_run]


def test_tags_are_searchable_with_the_language(store, make_experiment, make_run):
    experiment_id = make_experiment("sentiment")
    llama, other = make_run(experiment_id), make_run(experiment_id)
    store.set_tags("run", llama, {"base": "llama"})

    assert search(store.search_frame(), 'tags.base = "llama" and experiment contains "senti"')["id"].to_list() == [llama]
    assert search(store.search_frame(), "not tags.base = llama")["id"].to_list() == [other]


def test_a_search_frame_of_an_empty_store_or_an_unknown_experiment(store):
    assert store.search_frame().is_empty()
    with pytest.raises(NotFoundError, match="no experiment with ID 42"):
        store.search_frame([42])
    with pytest.raises(ValidationError, match="experiment IDs must be a list"):
        store.search_frame("1")


def test_the_search_frame_of_runs_without_params_or_metrics_has_the_run_columns(store, make_experiment):
    experiment_id = make_experiment()
    store.create_run(experiment_id, {})

    frame = store.search_frame()

    assert frame.columns == [
        "id",
        "experiment_id",
        "experiment",
        "name",
        "status",
        "created",
        "started",
        "ended",
        "duration",
        "note",
    ]
    assert frame.schema["created"] == pl.Datetime("us")
