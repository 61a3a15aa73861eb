"""Runs: start with a validated config, list, metrics, compare."""

from datetime import datetime

import numpy as np
import polars as pl
import pytest

from core.errors import NotFoundError, TuneDeckError, ValidationError
from core.runs import adapters_of, start_run
from core.status import RunStatus
from core.writer import MetricWriter
from tests.core.curves import as_set, power_of_two_read


def test_start_training_run_creates_a_queued_run_and_hands_it_to_enqueue(store, make_experiment):
    experiment_id = make_experiment()
    queued = []

    def enqueue(run_id: int) -> str:
        queued.append(run_id)
        return f"job-{run_id}"

    run_id = start_run(store, experiment_id, {"learning_rate": 3e-4, "epochs": 2, "lora_rank": 4}, enqueue=enqueue)

    run = store.get_run(run_id)
    assert queued == [run_id]
    assert (run.status, run.job_id, run.experiment_id) == (RunStatus.QUEUED, f"job-{run_id}", experiment_id)
    assert run.config["learning_rate"] == 3e-4 and run.config["lora_rank"] == 4 and run.config["trainer"] == "builtin"
    assert store.get_experiment(experiment_id).status == "running"


def test_a_run_that_cannot_be_queued_is_marked_failed(store, make_experiment):
    experiment_id = make_experiment()

    def broken_queue(run_id: int) -> str:
        raise ConnectionError("queue is down")

    with pytest.raises(TuneDeckError, match="could not be queued: queue is down"):
        start_run(store, experiment_id, {"epochs": 1}, enqueue=broken_queue)

    (run,) = store.list_runs(experiment_id)
    assert run.status is RunStatus.FAILED and "queue is down" in run.error
    assert store.get_experiment(experiment_id).status == "failed"


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"epochs": 1, "learning_rte": 0.1}, "learning_rte", "not a known setting"),
        ({"epochs": 1, "learning_rate": -0.1}, "learning_rate", "more than 0"),
        ({"epochs": 1, "learning_rate": "fast"}, "learning_rate", "valid number"),
        ({"epochs": 1, "lora_rank": 0}, "lora_rank", "at least 1"),
        ({"epochs": 1, "lora_dropout": 1.0}, "lora_dropout", "less than 1"),
        ({"epochs": 1, "batch_size": 0}, "batch_size", "at least 1"),
        ({"epochs": 1, "target_modules": []}, "target_modules", "at least 1"),
        ({"epochs": 1, "target_modules": ["fc1; rm -rf /"]}, "target_modules.0", "may only contain unaccented letters, digits and _ . -"),
        ({"epochs": 0}, "epochs", "at least 1"),
        ({}, "training config", "set epochs or max_steps"),
    ],
)
def test_bad_training_config_gives_field_level_errors_and_changes_nothing(
    store, unchanged, make_experiment, config, field, message
):
    experiment_id = store.list_experiments().items[0].id
    calls = []

    with pytest.raises(ValidationError) as caught:
        start_run(store, experiment_id, config, enqueue=calls.append)

    assert message in caught.value.field_errors[field]
    assert calls == []
    unchanged()


def test_starting_a_run_in_a_missing_experiment_is_a_clear_error(store, unchanged):
    with pytest.raises(NotFoundError, match="no experiment with ID 999"):
        start_run(store, 999, {"epochs": 1})
    unchanged()


def test_list_runs_for_experiment_is_newest_first_with_config_metrics_status_and_adapter(store, make_experiment, make_run):
    experiment_id = make_experiment()
    older = make_run(experiment_id, metrics={"loss": [2.0, 1.0]}, config={"learning_rate": 0.1})
    newer = make_run(experiment_id, status="running", config={"learning_rate": 0.2})
    store.complete_run(newer, {"path": "/tmp/a", "base_model": "tiny-base", "size_bytes": 10, "checksum": "sha256:1"})

    runs = store.list_runs(experiment_id)

    assert [run.id for run in runs] == [newer, older]
    assert runs[0].config == {"learning_rate": 0.2}
    assert runs[0].adapter.version == 1 and runs[1].adapter is None
    assert runs[1].metrics["loss"].last == 1.0
    assert [run.status for run in runs] == [RunStatus.COMPLETED, RunStatus.COMPLETED]


def test_get_run_metrics_has_time_series_per_key_and_final_summary(store, make_experiment, make_run):
    run_id = make_run(make_experiment(), metrics={"loss": [2.0, 0.5, 1.0], "learning_rate": [0.1, 0.2, 0.3]})

    metrics = store.get_run_metrics(run_id)

    loss = metrics.of("loss")
    assert loss["step"].to_list() == [1, 2, 3]
    assert loss["value"].to_list() == [2.0, 0.5, 1.0]
    assert loss["wall_time"].null_count() == 0
    summary = metrics.summary["loss"]
    assert (summary.last, summary.min, summary.max, summary.count, summary.last_step) == (1.0, 0.5, 2.0, 3, 3)
    assert set(metrics.summary) == {"loss", "learning_rate"}


def test_get_run_metrics_for_chosen_keys(store, make_experiment, make_run):
    run_id = make_run(make_experiment(), metrics={"loss": [2.0], "learning_rate": [0.1]})

    metrics = store.get_run_metrics(run_id, keys=["loss"])

    assert metrics.series["key"].unique().to_list() == ["loss"]
    assert set(metrics.summary) == {"loss"}


def test_compare_runs_side_by_side_highlights_best_per_metric(store, make_experiment, make_run):
    experiment_id = make_experiment()
    a = make_run(
        experiment_id,
        metrics={"eval_loss": [0.5], "eval_accuracy": [0.70], "learning_rate": [0.1]},
        config={"learning_rate": 0.1, "lora_rank": 8},
    )
    b = make_run(
        experiment_id,
        metrics={"eval_loss": [0.3], "eval_accuracy": [0.65], "learning_rate": [0.2]},
        config={"learning_rate": 0.2, "lora_rank": 8},
    )
    c = make_run(experiment_id, metrics={"eval_loss": [0.4]}, config={"learning_rate": 0.3, "lora_rank": 8, "seed": 1})

    comparison = store.compare_runs([a, b, c])

    metrics = {row.key: row for row in comparison.metrics}
    assert metrics["eval_loss"].values == {a: 0.5, b: 0.3, c: 0.4}
    assert (metrics["eval_loss"].direction, metrics["eval_loss"].best_run_id) == ("min", b)
    assert (metrics["eval_accuracy"].direction, metrics["eval_accuracy"].best_run_id) == ("max", a)
    assert metrics["eval_accuracy"].values[c] is None
    assert metrics["learning_rate"].best_run_id is None
    assert [row.key for row in comparison.differing_config] == ["learning_rate", "seed"]
    assert comparison.differing_config[1].values == {a: None, b: None, c: 1}


def test_every_best_run_on_a_page_is_the_same_run_whatever_order_the_runs_completed_in(store, make_experiment):
    """A tie goes to the lower run ID everywhere: the experiment's best metrics (and so its best adapter), its
    aggregates and the compare page; a failed run's last value is no result, so it is never the experiment's best."""
    experiment_id = make_experiment()
    runs = [store.create_run(experiment_id, {}) for _ in range(3)]
    for run_id, loss in zip(runs, [0.5, 0.3, 0.5], strict=True):
        store.mark_running(run_id, worker="test-worker")
        with MetricWriter(store) as writer:
            writer.log_series(run_id, "eval_loss", [1], [loss])
    first, failed, third = runs
    store.complete_run(third)  # the tie's later run completes first
    store.complete_run(first)
    store.fail_run(failed, "CUDA out of memory")

    experiment = store.get_experiment(experiment_id)
    (aggregate,) = store.get_experiment_detail(experiment_id).aggregates
    (compared,) = store.compare_runs([third, first]).metrics

    assert [(best.value, best.run_id) for best in experiment.best_metrics] == [(0.5, first)]
    assert (aggregate.best, aggregate.best_run_id, aggregate.count) == (0.5, first, 2)
    assert compared.best_run_id == first


def test_a_failed_or_cancelled_runs_last_value_is_shown_but_never_best_while_a_live_one_may_lead_and_one_alone_is_not_best(
    store, make_experiment, make_run
):
    """One run in the race took the star beside a cancelled run's better value (★ 1.444 next to 0.3325)."""
    experiment_id = make_experiment()
    completed = make_run(experiment_id, metrics={"eval_loss": [0.5]})
    cancelled = make_run(experiment_id, status="cancelled", metrics={"eval_loss": [0.1]})
    failed = make_run(experiment_id, status="failed", metrics={"eval_loss": [0.2]})
    running = make_run(experiment_id, status="running", metrics={"eval_loss": [0.4]})

    (row,) = store.compare_runs([completed, cancelled, failed, running]).metrics
    (without_the_live_one,) = store.compare_runs([completed, cancelled, failed]).metrics

    assert row.values == {completed: 0.5, cancelled: 0.1, failed: 0.2, running: 0.4}
    assert row.best_run_id == running
    assert without_the_live_one.best_run_id is None  # the completed run alone is in the race: nothing to beat
    assert store.get_experiment(experiment_id).best_metrics[0].run_id == completed  # the experiment's best is still it


def test_points_that_reach_a_completed_run_late_move_its_experiments_best_metric_too(store, make_experiment, make_run):
    """A joined process's last flush, or a journal replayed after the run's end: the experiment's best follows its
    completed runs' last values, better or worse (it kept the value of the run's end, and a later unrelated change
    moved it)."""
    experiment_id = make_experiment()
    first = make_run(experiment_id, metrics={"eval_loss": [0.9, 0.5]})
    second = make_run(experiment_id, metrics={"eval_loss": [0.8, 0.4]})

    def best() -> tuple[int, float]:
        (found,) = store.get_experiment(experiment_id).best_metrics
        return found.run_id, found.value

    def late(value: float) -> pl.DataFrame:
        return pl.DataFrame({"run_id": [first], "key": ["eval_loss"], "step": [3], "value": [value], "wall_time": [datetime(2026, 1, 1)]})

    assert best() == (second, 0.4)
    store.log_metrics(late(0.1))
    assert best() == (first, 0.1)
    store.log_metrics(late(0.7))  # the same step again, worse
    assert best() == (second, 0.4)
    assert store.verify_integrity() == []


def test_compare_runs_respects_a_direction_override(store, make_experiment, make_run):
    experiment_id = make_experiment()
    a = make_run(experiment_id, metrics={"reward_error": [0.2]})
    b = make_run(experiment_id, metrics={"reward_error": [0.9]})
    store.set_metric_direction(experiment_id, "reward_error", "max")

    (row,) = store.compare_runs([a, b]).metrics

    assert (row.direction, row.best_run_id) == ("max", b)


def test_runs_of_experiments_that_disagree_on_a_direction_have_no_best_for_it_whatever_their_order(
    store, make_experiment, make_run
):
    """The first run's experiment decided: /compare?runs=7,8 starred one run, ?runs=8,7 the other."""
    first, second = make_experiment("exp A"), make_experiment("exp B")
    a = make_run(first, metrics={"eval_loss": [0.3], "accuracy": [0.5]})
    b = make_run(second, metrics={"eval_loss": [0.2], "accuracy": [0.9]})
    store.set_metric_direction(first, "eval_loss", "max")

    compared = [store.compare_runs(ids) for ids in ([a, b], [b, a])]

    for comparison in compared:
        rows = {row.key: (row.direction, row.best_run_id) for row in comparison.metrics}
        assert rows == {"accuracy": ("max", b), "eval_loss": (None, None)}
        assert comparison.disputed == ["eval_loss"]


def test_a_direction_one_experiment_set_holds_where_the_others_runs_did_not_log_the_metric_or_say_no_way(
    store, make_experiment, make_run
):
    """A run of another experiment without the metric made it "disputed" and took the star away."""
    first, second = make_experiment("exp A"), make_experiment("exp B")
    a1, a2 = make_run(first, metrics={"foo": [0.1]}), make_run(first, metrics={"foo": [0.9]})
    b = make_run(second, metrics={"bar": [1.0], "foo_count": [3.0]})
    store.set_metric_direction(first, "foo", "max")

    comparison = store.compare_runs([a1, a2, b])

    foo = next(row for row in comparison.metrics if row.key == "foo")
    assert (foo.direction, foo.best_run_id, comparison.disputed) == ("max", a2, [])


def test_compare_runs_names_unknown_runs(store, make_experiment, make_run):
    run_id = make_run(make_experiment())

    with pytest.raises(NotFoundError, match="no run with ID 998, 999"):
        store.compare_runs([run_id, 998, 999])
    with pytest.raises(ValidationError, match="at least one run"):
        store.compare_runs([])


def test_long_curves_are_downsampled_in_the_query_keeping_their_extremes(store, make_experiment, make_run):
    experiment_id = make_experiment()
    long_run, short_run = make_run(experiment_id, status="running"), make_run(experiment_id, status="running")
    values = np.sin(np.arange(1, 20_001) / 300.0)
    values[12_345] = 7.0  # a spike
    values[777] = -7.0
    with MetricWriter(store) as writer:
        writer.log_series(long_run, "loss", np.arange(1, 20_001), values)
        writer.log_series(short_run, "loss", [1, 2, 3], [3.0, 2.0, 1.0])
        writer.log_series(short_run, "learning_rate", [1, 2, 3], [0.1, 0.2, 0.3])

    series = store.get_metric_series([long_run, short_run], ["loss"], max_points=200)

    long_curve = series.filter(series["run_id"] == long_run)
    assert 100 <= long_curve.height <= 200
    assert long_curve["value"].max() == 7.0 and long_curve["value"].min() == -7.0
    assert long_curve["step"].is_sorted()
    assert series.filter(series["run_id"] == short_run)["value"].to_list() == [3.0, 2.0, 1.0]
    everything = store.get_metric_series([short_run], None, max_points=None)
    assert sorted(everything["key"].unique().to_list()) == ["learning_rate", "loss"] and everything.height == 6


def test_series_come_back_by_run_key_and_step_whatever_order_they_were_stored_in(store, make_experiment, make_run):
    experiment_id = make_experiment()
    first, second = make_run(experiment_id, status="running"), make_run(experiment_id, status="running")
    for steps in ([1, 2], [3, 4]):  # each writer's flush stores the second run's points before the first's
        with MetricWriter(store) as writer:
            for run_id in (second, first):
                writer.log_series(run_id, "loss", steps, [float(step) for step in steps])
                writer.log_series(run_id, "accuracy", steps, [step / 10 for step in steps])
                writer.log_series(run_id, "Val/loss", steps, [step / 5 for step in steps])
    in_order = [(run_id, step) for run_id in (first, second) for step in (1, 2, 3, 4)]

    for max_points in (None, 1000):
        loss = store.get_metric_series([second, first], ["loss"], max_points=max_points)
        assert list(zip(loss["run_id"], loss["step"], strict=True)) == in_order
        both = store.get_metric_series([first, second], None, max_points=max_points)
        keys = ("Val/loss", "accuracy", "loss")  # by code point, as Polars sorts, not by a locale's collation
        expected = [(run_id, key, step) for run_id in (first, second) for key in keys for step in (1, 2, 3, 4)]
        assert list(zip(both["run_id"], both["key"], both["step"], strict=True)) == expected


def test_series_keep_each_points_wall_time_to_the_microsecond_whichever_way_they_are_read(store, make_experiment, make_run):
    """One curve, a few runs' curves, many runs' curves and bucketed curves are read by different statements (on
    PostgreSQL the wall times leave the server as whole microseconds, or in a binary COPY past 16 runs); every one
    gives back the times that were logged."""
    experiment_id = make_experiment()
    runs = [make_run(experiment_id, status="running") for _ in range(17)]
    logged = [
        datetime(2026, 11, 30, 21, 58, 7, 123457),
        datetime(1999, 12, 31, 23, 59, 59, 999999),  # before PostgreSQL's own epoch (2000)
        datetime(1969, 12, 31, 23, 59, 59, 999999),  # a microsecond before 1970
        datetime(2262, 4, 11, 23, 47, 16, 854775),  # far past what a float of epoch seconds keeps to the microsecond
    ]
    steps = range(1, len(logged) + 1)
    store.log_metrics(
        pl.DataFrame(
            {
                "run_id": [run_id for run_id in runs for _ in steps],
                "key": "loss",
                "step": list(steps) * len(runs),
                "value": [float(len(logged) - step) for step in steps] * len(runs),  # lowest at the last step
                "wall_time": logged * len(runs),
            },
            schema_overrides={"wall_time": pl.Datetime("us")},
        )
    )

    reads = {
        "one curve": (store.get_metric_series(runs[:1], ["loss"], max_points=None), 4),
        "a few runs": (store.get_metric_series(runs[:2], ["loss"], max_points=None), 8),
        "many runs": (store.get_metric_series(runs, None, max_points=None), 4 * 17),
        "short enough to come whole": (store.get_metric_series(runs[:2], None, max_points=1000), 8),
        "one bucket per run": (store.get_metric_series(runs[:2], ["loss"], max_points=2), 4),  # its highest and lowest
    }
    for name, (series, height) in reads.items():
        assert series.schema == {"run_id": pl.Int64, "key": pl.String, "step": pl.Int64, "value": pl.Float64, "wall_time": pl.Datetime("us")}
        assert series.height == height, name
        assert [logged[step - 1] for step in series["step"]] == series["wall_time"].to_list(), name
    assert reads["one bucket per run"][0]["step"].to_list() == [1, 4, 1, 4]
    assert store.get_metric_series(runs[:1], ["accuracy"], max_points=None).schema == reads["one curve"][0].schema


def test_an_ended_runs_whole_curve_holds_every_point_logged_to_it_before_and_after_its_end(store, make_experiment, make_run):
    """A journal replayed late brings points after the run ended: a new step, a step logged again. The history call
    shows them at once, times to the microsecond (on PostgreSQL an ended run's curve is read from its seal while it
    still holds: core.pg_curves)."""
    experiment_id = make_experiment()
    times = [datetime(1999, 12, 31, 23, 59, 59, 999999), datetime(2026, 12, 3, 7, 30, 1, 5), datetime(2262, 4, 11, 23, 47, 16, 854775)]

    def points(run_id: int, steps: list[int], values: list[float], wall_times: list[datetime]) -> pl.DataFrame:
        return pl.DataFrame(
            {"run_id": run_id, "key": "loss", "step": steps, "value": values, "wall_time": wall_times},
            schema_overrides={"wall_time": pl.Datetime("us")},
        )

    def curve(run_id: int) -> list[tuple]:
        read = store.get_metric_series([run_id], ["loss"], max_points=None)
        assert read["run_id"].to_list() == [run_id] * read.height and set(read["key"]) <= {"loss"}
        return list(zip(read["step"], read["value"], read["wall_time"], strict=True))

    for status in ("completed", "failed", "cancelled"):
        run_id = make_run(experiment_id, status="running")
        store.log_metrics(points(run_id, [1, 2, 3], [1.0, 0.5, 0.25], times))
        {"completed": store.complete_run, "failed": lambda run: store.fail_run(run, "boom"), "cancelled": store.cancel_run}[status](run_id)
        assert curve(run_id) == [(1, 1.0, times[0]), (2, 0.5, times[1]), (3, 0.25, times[2])], status

        store.log_metrics(points(run_id, [2], [0.75], [times[2]]))  # the same count and last step, another value
        assert curve(run_id) == [(1, 1.0, times[0]), (2, 0.75, times[2]), (3, 0.25, times[2])], status
        store.log_metrics(points(run_id, [4], [0.125], [times[1]]))
        assert curve(run_id) == [(1, 1.0, times[0]), (2, 0.75, times[2]), (3, 0.25, times[2]), (4, 0.125, times[1])], status
    assert store.get_metric_series([run_id], ["accuracy"], max_points=None).is_empty()


def test_runs_table_has_one_row_per_run_and_the_last_value_of_each_metric(store, make_experiment, make_run):
    experiment_id = make_experiment()
    older = make_run(experiment_id, metrics={"loss": [1.0, 0.4], "accuracy": [0.5, 0.8]})
    newer = make_run(experiment_id, status="running", metrics={"loss": [0.9]})
    empty = make_run(experiment_id, status="queued")

    table = store.runs_table(experiment_id)

    assert table.columns == ["id", "name", "status", "created_at", "ended_at", "adapter_id", "accuracy", "loss"]
    assert table["id"].to_list() == [empty, newer, older]  # newest first, like list_runs
    assert table["status"].to_list() == ["queued", "running", "completed"]
    assert table["loss"].to_list() == [None, 0.9, 0.4]
    assert table["accuracy"].to_list() == [None, None, 0.8]


def test_runs_table_filters_on_metrics_and_sorts_by_one(store, make_experiment, make_run):
    experiment_id = make_experiment()
    runs = {
        accuracy: make_run(experiment_id, metrics={"accuracy": [accuracy], "eval_loss": [eval_loss]})
        for accuracy, eval_loss in [(0.4, 0.1), (0.6, 0.5), (0.9, 0.3), (0.7, 0.2)]
    }
    make_run(experiment_id, metrics={"eval_loss": [0.05]})  # no accuracy: a filter on it drops the run

    table = store.runs_table(experiment_id, where=["accuracy > 0.5"], order_by="eval_loss")

    assert table["id"].to_list() == [runs[0.7], runs[0.9], runs[0.6]]
    both = store.runs_table(experiment_id, where=["accuracy >= 0.6", "eval_loss < 0.4"], order_by="accuracy", descending=True)
    assert both["id"].to_list() == [runs[0.9], runs[0.7]]


def test_runs_table_sorts_runs_without_the_metric_last(store, make_experiment, make_run):
    experiment_id = make_experiment()
    without = make_run(experiment_id, status="queued")
    low, high = make_run(experiment_id, metrics={"loss": [0.2]}), make_run(experiment_id, metrics={"loss": [0.8]})

    assert store.runs_table(experiment_id, order_by="loss")["id"].to_list() == [low, high, without]
    assert store.runs_table(experiment_id, order_by="loss", descending=True)["id"].to_list() == [high, low, without]


@pytest.mark.parametrize(
    "where, order_by, message",
    [
        (["accuracy >"], None, "write a metric, a comparison and a number"),
        (["accuracy > high"], None, "'high' is not a number"),
        (["accuracy ~ 0.5"], None, "write a metric, a comparison and a number"),
        (["bleu > 0.5"], None, "no run of this experiment logged 'bleu'; its metrics are: loss"),
        ([], "bleu", "cannot sort runs by 'bleu'"),
        ([{"key": "loss", "op": "like", "value": 1}], None, "invalid run filter: op"),
        (["acc$ > 0.5"], None, "invalid run filter: key"),
        (["loss >> 0.5"], None, "'loss >> 0.5': write one comparison \\(>=, <=, !=, >, <, =\\) between a metric and a number"),
        (["loss > 0.1 and loss < 1"], None, "for several conditions give several filters"),
        (["loss > nan"], None, "compare with a finite number, not 'nan'"),
        (["loss < 1e400"], None, "compare with a finite number, not '1e400'"),
    ],
)
def test_runs_table_explains_a_filter_it_cannot_use(store, make_experiment, make_run, where, order_by, message):
    experiment_id = make_experiment()
    make_run(experiment_id, metrics={"loss": [0.5]})

    with pytest.raises(ValidationError, match=message):
        store.runs_table(experiment_id, where=where, order_by=order_by)


def test_runs_table_takes_one_filter_without_a_list(store, make_experiment, make_run):
    experiment_id = make_experiment()
    make_run(experiment_id, metrics={"loss": [0.5]})
    low = make_run(experiment_id, metrics={"loss": [0.2]})

    assert store.runs_table(experiment_id, where="loss < 0.3")["id"].to_list() == [low]


def test_runs_table_keeps_a_metric_named_like_a_run_column_apart(store, make_experiment, make_run):
    experiment_id = make_experiment()
    low = make_run(experiment_id, metrics={"status": [0.2], "loss": [0.5]})
    high = make_run(experiment_id, metrics={"status": [0.9], "loss": [0.4]})

    table = store.runs_table(experiment_id, where=["status > 0.5"], order_by="status")
    assert table["id"].to_list() == [high]
    assert table["status"].to_list() == ["completed"] and table["metric:status"].to_list() == [0.9]
    assert store.runs_table(experiment_id, order_by="metric:status")["id"].to_list() == [low, high]


def test_runs_table_of_a_missing_experiment_is_not_found(store):
    with pytest.raises(NotFoundError, match="no experiment with ID 42"):
        store.runs_table(42)


def test_runs_table_of_an_experiment_without_runs_is_empty(store, make_experiment):
    table = store.runs_table(make_experiment())

    assert table.is_empty()
    assert table.columns == ["id", "name", "status", "created_at", "ended_at", "adapter_id"]


@pytest.mark.parametrize("max_points", [1, 2**31, 10**12, 2.5, True])
def test_a_curve_read_names_the_points_it_allows(store, make_experiment, make_run, max_points):
    run_id = make_run(make_experiment(), metrics={"loss": [1.0, 0.5]})

    with pytest.raises(ValidationError, match=r"max_points must be a whole number from 2 to 100,000,000 \(None for every point\)"):
        store.get_metric_series([run_id], ["loss"], max_points=max_points)


def test_a_running_runs_long_curve_is_bucketed_by_powers_of_two_and_an_ended_ones_over_its_last_step(
    store, make_experiment, make_run
):
    """Both backends alike: a live curve is bucketed by powers of two in steps from step 0, as core.overviews does."""
    run_id = make_run(make_experiment(), status="running")
    steps, values = np.arange(3_000), np.cumsum(np.random.default_rng(7).normal(size=3_000))
    with MetricWriter(store) as writer:
        writer.log_series(run_id, "loss", steps, values)
    logged = pl.DataFrame({"key": "loss", "step": steps, "value": values})

    assert as_set(store.get_metric_series([run_id], max_points=100)) == power_of_two_read(logged, 50)
    store.complete_run(run_id)
    assert store.get_metric_series([run_id], max_points=100).height == 100  # 50 buckets over its last step


@pytest.mark.parametrize("spacing", [1, 9_000_000_000_007, 4_611_686_018_427_387])  # up to steps near 2^62
def test_an_ended_runs_curve_is_bucketed_over_its_last_step_in_whole_numbers_however_large_the_steps(
    store, make_experiment, make_run, spacing
):
    """Both backends alike, as the README says: bucket = step * buckets // (last step + 1), each bucket's lowest and
    highest point kept (PostgreSQL computed it in floating point: past 10^13 steps fell into the next bucket, and a
    curve gave more points than asked for)."""
    run_id = make_run(make_experiment(), status="running")
    steps = [index * spacing for index in range(1_000)]
    values = np.random.default_rng(3).permutation(1_000).astype(float)  # no ties: one lowest and one highest a bucket
    with MetricWriter(store) as writer:
        writer.log_series(run_id, "loss", steps, values)
    store.complete_run(run_id)

    for max_points in (2, 7, 100):
        buckets, last = max_points // 2, steps[-1]
        expected = pl.DataFrame({"step": steps, "value": values}).with_columns(
            bucket=pl.Series([step * buckets // (last + 1) for step in steps])
        )
        kept = pl.concat([expected.sort("value").group_by("bucket").first(), expected.sort("value").group_by("bucket").last()])
        read = store.get_metric_series([run_id], ["loss"], max_points=max_points)
        assert read.height <= max_points
        assert set(zip(read["step"], read["value"], strict=True)) == set(zip(kept["step"], kept["value"], strict=True))


def test_the_adapters_runs_trained_are_found_by_run_across_experiments(store, make_experiment, make_run, tmp_path):
    runs = []
    for name in ("first", "second"):
        experiment_id = make_experiment(name)
        run_id = make_run(experiment_id, status="running")
        folder = tmp_path / f"adapter-{run_id}"
        folder.mkdir()
        store.complete_run(run_id, {"path": str(folder), "base_model": "tiny-base", "size_bytes": 0, "checksum": "sha256:x"})
        runs.append(run_id)
    without = make_run(experiment_id)

    found = adapters_of(store, store.get_runs([*runs, without]))

    assert {run_id: (adapter.run_id, adapter.name) for run_id, adapter in found.items()} == {
        runs[0]: (runs[0], "first"),
        runs[1]: (runs[1], "second"),
    }
