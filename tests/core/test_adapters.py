"""Adapters: registered on completion, versioned, linked to runs; best metrics follow the best run."""

import pytest

from core.errors import ValidationError

ADAPTER = {"path": "data/adapters/run-1", "base_model": "tiny-base", "size_bytes": 2048, "checksum": "sha256:abc"}


def test_link_adapter_after_training(store, make_experiment, make_run):
    experiment_id = make_experiment("sentiment")
    run_id = make_run(experiment_id, status="running", metrics={"eval_loss": [0.5]})

    adapter = store.complete_run(run_id, ADAPTER)

    assert (adapter.name, adapter.version, adapter.run_id, adapter.experiment_id) == ("sentiment", 1, run_id, experiment_id)
    assert (adapter.path, adapter.base_model, adapter.size_bytes, adapter.checksum) == (
        "data/adapters/run-1",
        "tiny-base",
        2048,
        "sha256:abc",
    )
    assert store.get_adapter(adapter.id) == adapter


def test_adapter_versions_increment_per_name(store, make_experiment, make_run):
    experiment_id = make_experiment("sentiment")
    versions = []
    for _ in range(3):
        run_id = make_run(experiment_id, status="running")
        versions.append(store.complete_run(run_id, ADAPTER).version)
    other = store.complete_run(make_run(experiment_id, status="running"), {**ADAPTER, "name": "other"})

    assert versions == [1, 2, 3]
    assert other.version == 1
    assert [a.version for a in store.list_adapters(experiment_id) if a.name == "sentiment"] == [3, 2, 1]


def test_navigate_from_run_to_adapter(store, make_experiment, make_run):
    run_id = make_run(make_experiment(), status="running")
    adapter = store.complete_run(run_id, ADAPTER)

    run = store.get_run(run_id)

    assert (run.adapter.id, run.adapter.version) == (adapter.id, 1)
    assert store.get_adapter(run.adapter.id).run_id == run_id


def test_best_metrics_follow_the_best_completed_run(store, make_experiment, make_run):
    experiment_id = make_experiment()
    first = make_run(experiment_id, metrics={"eval_loss": [0.9, 0.5], "eval_accuracy": [0.7]})
    make_run(experiment_id, metrics={"eval_loss": [0.7], "eval_accuracy": [0.6]})
    third = make_run(experiment_id, metrics={"eval_loss": [0.4], "eval_accuracy": [0.65]})
    make_run(experiment_id, status="failed", metrics={"eval_loss": [0.01]})

    best = {row.key: row for row in store.get_experiment(experiment_id).best_metrics}

    assert (best["eval_loss"].value, best["eval_loss"].run_id) == (0.4, third)
    assert (best["eval_accuracy"].value, best["eval_accuracy"].run_id) == (0.7, first)
    assert store.get_experiment(experiment_id).best_primary.run_id == third


def test_primary_metric_defaults_to_eval_loss_else_loss_and_can_be_set(store, make_experiment, make_run):
    only_loss = make_experiment()
    make_run(only_loss, metrics={"loss": [0.3]})
    assert store.get_experiment(only_loss).primary_metric == "loss"

    store.set_primary_metric(only_loss, "eval_accuracy")
    assert store.get_experiment(only_loss).primary_metric == "eval_accuracy"


def test_an_experiment_with_neither_loss_ranks_by_the_first_metric_it_logged(store, make_experiment, make_run):
    """An import of runs that logged only rouge1 showed 'Primary metric: eval_loss (best –)'."""
    summaries = make_experiment()
    make_run(summaries, metrics={"rouge1": [0.3, 0.35], "bleu": [20.0], "F1": [0.6]})

    experiment = store.get_experiment(summaries)
    # First by code point on every backend (a database's collation would put "bleu" first, as people read it, on one
    # store and not on another, so the same runs would rank by two metrics).
    assert experiment.primary_metric == "F1"
    assert experiment.best_primary.value == 0.6
    assert [best.key for best in experiment.best_metrics] == ["F1", "bleu", "rouge1"]


def test_a_direction_override_recomputes_best_metrics(store, make_experiment, make_run):
    experiment_id = make_experiment()
    make_run(experiment_id, metrics={"score_loss": [0.2]})
    high = make_run(experiment_id, metrics={"score_loss": [0.9]})

    store.set_metric_direction(experiment_id, "score_loss", "max")

    (best,) = store.get_experiment(experiment_id).best_metrics
    assert (best.value, best.run_id, best.direction) == (0.9, high, "max")


@pytest.mark.parametrize(
    "bad",
    [
        {**ADAPTER, "size_bytes": -1},
        {**ADAPTER, "path": ""},
        {k: v for k, v in ADAPTER.items() if k != "checksum"},
        {**ADAPTER, "extra": 1},
    ],
)
def test_bad_adapter_is_rejected_and_the_run_stays_running(store, make_experiment, make_run, bad):
    run_id = make_run(make_experiment(), status="running")

    with pytest.raises(ValidationError, match="invalid adapter"):
        store.complete_run(run_id, bad)

    assert store.get_run(run_id).status == "running"
    assert store.list_adapters() == []
