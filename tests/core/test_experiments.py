"""Experiments: create, list, detail, soft delete and restore."""

import pytest

from core.errors import ConflictError, NotFoundError, ValidationError
from core.status import ExperimentStatus


def test_create_experiment_returns_its_id(store):
    experiment_id = store.create_experiment({"name": "sentiment lora", "dataset": "data/sample/sentiment.csv"})

    experiment = store.get_experiment(experiment_id)
    assert experiment.id == experiment_id
    assert experiment.name == "sentiment lora"
    assert experiment.dataset == "data/sample/sentiment.csv"
    assert experiment.status is ExperimentStatus.CREATED
    assert experiment.run_count == 0
    assert experiment.primary_metric == "eval_loss"


def test_list_experiments_shows_name_run_count_best_metrics_status_and_dates(store, make_experiment, make_run):
    experiment_id = make_experiment("with runs")
    make_run(experiment_id, metrics={"eval_loss": [0.9, 0.4]})
    make_run(experiment_id, metrics={"eval_loss": [0.8, 0.6]})

    (item,) = store.list_experiments().items
    assert (item.name, item.run_count, item.status) == ("with runs", 2, ExperimentStatus.COMPLETED)
    assert item.best_primary.key == "eval_loss" and item.best_primary.value == 0.4
    assert item.created_at < item.updated_at


def test_list_experiments_is_newest_first_by_default(store, make_experiment):
    ids = [make_experiment() for _ in range(3)]

    assert [item.id for item in store.list_experiments().items] == ids[::-1]


@pytest.mark.parametrize(
    ("sort", "descending", "expected"),
    [
        ("name", False, ["alpha", "Bravo", "charlie"]),
        ("name", True, ["charlie", "Bravo", "alpha"]),
        ("created_at", False, ["charlie", "alpha", "Bravo"]),
    ],
)
def test_list_experiments_sorts_by_other_keys(store, make_experiment, sort, descending, expected):
    for name in ["charlie", "alpha", "Bravo"]:
        make_experiment(name)

    assert [item.name for item in store.list_experiments(sort=sort, descending=descending).items] == expected


def test_list_experiments_sorts_by_run_count(store, make_experiment, make_run):
    busy, idle = make_experiment("busy"), make_experiment("idle")
    make_run(busy)
    make_run(busy)

    assert [item.id for item in store.list_experiments(sort="run_count").items] == [busy, idle]


def test_list_experiments_is_paginated_with_total_count(store, make_experiment):
    ids = [make_experiment() for _ in range(7)][::-1]

    first = store.list_experiments(page=1, page_size=3)
    last = store.list_experiments(page=3, page_size=3)
    beyond = store.list_experiments(page=4, page_size=3)

    assert [item.id for item in first.items] == ids[:3]
    assert [item.id for item in last.items] == ids[6:]
    assert beyond.items == []
    assert first.total == last.total == beyond.total == 7
    assert first.pages == 3


def test_pagination_of_an_empty_store_has_one_empty_page(store):
    page = store.list_experiments()

    assert (page.items, page.total, page.pages) == ([], 0, 1)


def test_list_experiments_filters_by_status(store, make_experiment, make_run):
    done, failed, fresh = make_experiment("done"), make_experiment("failed"), make_experiment("fresh")
    make_run(done)
    make_run(failed, status="failed")

    assert [item.id for item in store.list_experiments(status="completed").items] == [done]
    assert {item.id for item in store.list_experiments(status=["failed", "created"]).items} == {failed, fresh}
    assert store.list_experiments(status="failed").total == 1


def test_list_experiments_filters_by_name_substring_ignoring_case(store, make_experiment):
    make_experiment("Llama sentiment")
    make_experiment("mistral summaries")

    assert [item.name for item in store.list_experiments(name_contains="SENTI").items] == ["Llama sentiment"]
    assert store.list_experiments(name_contains="%").total == 0
    assert [item.name for item in store.list_experiments(name_contains="  sentiment ").items] == ["Llama sentiment"]


def test_get_experiment_detail_has_all_runs_and_aggregated_metrics(store, make_experiment, make_run):
    experiment_id = make_experiment()
    first = make_run(experiment_id, metrics={"eval_loss": [0.9, 0.5], "eval_accuracy": [0.6, 0.7]})
    second = make_run(experiment_id, metrics={"eval_loss": [0.8, 0.3], "eval_accuracy": [0.6, 0.65]})

    detail = store.get_experiment_detail(experiment_id)

    assert [run.id for run in detail.runs] == [second, first]
    aggregates = {row.key: row for row in detail.aggregates}
    assert (aggregates["eval_loss"].best, aggregates["eval_loss"].best_run_id) == (0.3, second)
    assert aggregates["eval_loss"].mean == pytest.approx(0.4)
    assert aggregates["eval_loss"].count == 2
    assert (aggregates["eval_accuracy"].best, aggregates["eval_accuracy"].best_run_id) == (0.7, first)


def test_delete_experiment_is_soft_and_keeps_history(store, make_experiment, make_run):
    experiment_id = make_experiment("to delete")
    run_id = make_run(experiment_id, metrics={"loss": [1.0, 0.5]})

    store.delete_experiment(experiment_id)

    assert store.list_experiments().total == 0
    (shown,) = store.list_experiments(include_deleted=True).items
    assert shown.id == experiment_id and shown.is_deleted
    assert store.get_run(run_id).metrics["loss"].count == 2
    assert store.get_run_metrics(run_id).series.height == 2


def test_restore_brings_a_deleted_experiment_back(store, make_experiment):
    experiment_id = make_experiment("comeback")
    store.delete_experiment(experiment_id)

    store.restore_experiment(experiment_id)

    assert [item.id for item in store.list_experiments().items] == [experiment_id]
    assert not store.get_experiment(experiment_id).is_deleted


def test_deleted_experiment_name_can_be_reused_at_once(store, make_experiment):
    old = make_experiment("reused")
    store.delete_experiment(old)

    new = make_experiment("reused")

    assert new != old
    assert [item.id for item in store.list_experiments().items] == [new]


def test_restoring_into_a_taken_name_is_a_clear_error(store, make_experiment):
    old = make_experiment("taken")
    store.delete_experiment(old)
    make_experiment("taken")

    with pytest.raises(ConflictError, match="“taken” already exists"):
        store.restore_experiment(old)
    assert store.get_experiment(old).is_deleted


def test_a_deleted_experiment_whose_name_was_taken_comes_back_under_a_new_name(store, make_experiment):
    old = make_experiment("taken")
    store.delete_experiment(old)
    make_experiment("taken")

    with pytest.raises(ValidationError, match="name must not be empty"):
        store.restore_experiment(old, name="  ")
    store.restore_experiment(old, name="taken (first try)")

    restored = store.get_experiment(old)
    assert (restored.name, restored.is_deleted) == ("taken (first try)", False)


def test_live_names_are_unique(store, make_experiment):
    make_experiment("unique")

    with pytest.raises(ConflictError, match="already exists"):
        make_experiment("unique")


def test_delete_experiment_cancels_its_queued_and_running_runs(store, make_experiment, make_run):
    experiment_id = make_experiment()
    queued = make_run(experiment_id, status="queued")
    running = make_run(experiment_id, status="running")
    done = make_run(experiment_id, status="completed")

    cancelled = store.delete_experiment(experiment_id)

    assert sorted(cancelled) == sorted([queued, running])
    statuses = {run.id: run.status.value for run in store.list_runs(experiment_id)}
    assert statuses == {queued: "cancelled", running: "cancelled", done: "completed"}
    assert store.get_run(running).error == "cancelled because the experiment was deleted"


def test_deleted_experiment_takes_no_new_runs(store, make_experiment):
    experiment_id = make_experiment()
    store.delete_experiment(experiment_id)

    with pytest.raises(ConflictError, match="is deleted; restore it first"):
        store.create_run(experiment_id, {})


def test_rename_experiment(store, make_experiment):
    experiment_id = make_experiment("before")

    store.rename_experiment(experiment_id, "  after  ")

    assert store.get_experiment(experiment_id).name == "after"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "", "dataset": "d.csv"}, "name"),
        ({"name": "   ", "dataset": "d.csv"}, "name"),
        ({"name": "x" * 10_000, "dataset": "d.csv"}, "name"),
        ({"name": "two\nlines", "dataset": "d.csv"}, "name"),
        ({"name": 42, "dataset": "d.csv"}, "name"),
        ({"name": "ok"}, "dataset"),
        ({"name": "ok", "dataset": ""}, "dataset"),
        ({"name": "ok", "dataset": "d.csv", "colour": "red"}, "colour"),
    ],
)
def test_bad_experiment_input_is_a_clear_error_and_changes_nothing(store, unchanged, payload, field):
    with pytest.raises(ValidationError) as caught:
        store.create_experiment(payload)

    assert field in caught.value.field_errors
    assert str(caught.value).startswith("invalid experiment:")
    unchanged()


@pytest.mark.parametrize(
    ("bad_id", "error"),
    [(999, NotFoundError), (0, ValidationError), (-1, ValidationError), ("1", ValidationError), (None, ValidationError),
     (1.5, ValidationError)],
)  # fmt: skip
def test_missing_or_malformed_experiment_id_is_a_clear_error(store, unchanged, bad_id, error):
    with pytest.raises(error, match="experiment"):
        store.get_experiment(bad_id)
    with pytest.raises(error, match="experiment"):
        store.delete_experiment(bad_id)
    unchanged()


@pytest.mark.parametrize(("page", "page_size"), [(0, 20), (1, 0), (1, 501), ("2", 20), (1, None)])
def test_bad_pagination_is_a_clear_error(store, page, page_size):
    with pytest.raises(ValidationError, match="page"):
        store.list_experiments(page=page, page_size=page_size)


def test_unknown_sort_key_or_status_is_a_clear_error(store):
    with pytest.raises(ValidationError, match="cannot sort experiments by 'name; DROP TABLE runs'"):
        store.list_experiments(sort="name; DROP TABLE runs")
    with pytest.raises(ValidationError, match="unknown status"):
        store.list_experiments(status="bogus")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.find_experiment(123), "experiment name must be text, got int"),
        (lambda s: s.list_adapter_aliases(5), "adapter name must be text, got int"),
    ],
)
def test_a_lookup_by_a_name_that_is_not_text_is_one_clear_error_on_every_backend(store, call, message):
    with pytest.raises(ValidationError, match=message):
        call(store)
    assert store.find_experiment("x" * 300) is None  # text no experiment could have finds nothing
