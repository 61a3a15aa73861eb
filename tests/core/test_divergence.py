"""Diverged runs: loss that ends above where it started or blows up on the way, or a stop for a non-finite value."""

import math

import pytest

from core.divergence import LOSS_KEYS, diverged_runs
from core.errors import ValidationError
from core.points import check_value
from core.writer import MetricWriter


@pytest.mark.parametrize(
    ("loss", "diverged"),
    [
        ([2.0, 1.0, 0.5], False),
        ([2.0, 220.0, 3.0], True),
        ([2.0, 0.1, 2.0], False),  # back to where it started is not above it
        ([1.0], False),
        ([2.0, 68_000_000.0, 1.5], True),  # blew up, and came back below its start
        ([2.0, 19.0, 0.5], False),  # a spike under ten times the start
        ([2.0, 20.0, 0.5], True),
    ],
)
def test_a_run_diverged_when_its_loss_ends_above_its_start_or_blows_up_on_the_way(store, make_experiment, make_run, loss, diverged):
    run_id = make_run(make_experiment(), metrics={"loss": loss})
    runs = store.get_runs([run_id])

    found = diverged_runs(runs, store.get_metric_series([run_id], list(LOSS_KEYS), max_points=60))

    assert found == ({run_id} if diverged else set())


def test_the_start_survives_downsampling_of_a_long_curve(store, make_experiment, make_run):
    rising = [1.0 + step / 100 for step in range(5000)]
    run_id = make_run(make_experiment(), metrics={"loss": rising})

    series = store.get_metric_series([run_id], list(LOSS_KEYS), max_points=60)

    assert diverged_runs(store.get_runs([run_id]), series) == {run_id}


def refusal(log) -> str:
    with pytest.raises(ValidationError) as refused:
        log()
    return str(refused.value)


def log_an_infinite_series(store) -> None:
    with MetricWriter(store) as writer:
        writer.log_series(1, "loss", [1], [math.inf])


@pytest.mark.parametrize(
    "refuse", [lambda store: check_value("loss", math.nan), log_an_infinite_series], ids=["a logged step", "a logged series"]
)
def test_a_run_stopped_for_a_non_finite_value_diverged_without_any_loss(store, make_experiment, make_run, refuse):
    """The run fails with the store's own refusal, whichever way the value came: its wording marks the run."""
    experiment_id = make_experiment()
    nan = make_run(experiment_id, status="failed", error=refusal(lambda: refuse(store)))
    other = make_run(experiment_id, status="failed", error="CUDA out of memory")
    runs = store.get_runs([nan, other])

    assert diverged_runs(runs, store.get_metric_series([nan, other], list(LOSS_KEYS))) == {nan}


def test_a_run_without_a_training_loss_is_not_judged(store, make_experiment, make_run):
    run_id = make_run(make_experiment(), metrics={"eval_loss": [0.1, 9.0]})

    assert diverged_runs(store.get_runs([run_id]), store.get_metric_series([run_id], list(LOSS_KEYS))) == set()
