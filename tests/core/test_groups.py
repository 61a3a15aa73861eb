"""Groups over seeds: runs that share every param but the seed become one row with each metric's mean, sample
standard deviation (ddof=1) and count, checked against numbers worked out by hand; curves draw each group's mean
with a band of ± one std."""

import math
from datetime import datetime

import altair as alt
import polars as pl
import pytest

from core.charts import ChartOptions, group_series, group_spec
from core.groups import default_group_keys, group_labels, group_runs, run_attributes, varying_params

# eval_loss by (learning_rate, seed): three seeds of 0.01, two of 0.1, one of 1.0
LOSSES = {(0.01, 1): 0.30, (0.01, 2): 0.34, (0.01, 3): 0.38, (0.1, 1): 0.5, (0.1, 2): 0.7, (1.0, 1): 0.9}


@pytest.fixture
def seeds(store, make_experiment, make_run):
    experiment_id = make_experiment()
    for (rate, seed), loss in LOSSES.items():
        make_run(experiment_id, config={"learning_rate": rate, "seed": seed, "epochs": 2}, metrics={"eval_loss": [1.0, loss]})
    return run_attributes(store.list_runs(experiment_id))


def test_grouping_by_everything_but_the_seed_gives_mean_sample_std_and_count(seeds):
    assert default_group_keys(seeds) == ["params.learning_rate"]

    groups = group_runs(seeds, ["params.learning_rate"], ["metrics.eval_loss"])

    by_rate = {row["params.learning_rate"]: row for row in groups.iter_rows(named=True)}
    assert groups["params.learning_rate"].to_list() == [0.01, 0.1, 1.0]
    # 0.01: mean (0.30 + 0.34 + 0.38) / 3 = 0.34; deviations -0.04, 0, 0.04; sample std sqrt(0.0032 / 2) = 0.04
    assert by_rate[0.01]["runs"] == 3
    assert by_rate[0.01]["metrics.eval_loss mean"] == pytest.approx(0.34)
    assert by_rate[0.01]["metrics.eval_loss std"] == pytest.approx(0.04)
    # 0.1: mean 0.6, deviations ±0.1, sample std sqrt(0.02 / 1) = 0.1414... (the population std would be 0.1)
    assert by_rate[0.1]["metrics.eval_loss mean"] == pytest.approx(0.6)
    assert by_rate[0.1]["metrics.eval_loss std"] == pytest.approx(math.sqrt(0.02))
    # one run has a mean but no spread
    assert (by_rate[1.0]["runs"], by_rate[1.0]["metrics.eval_loss mean"], by_rate[1.0]["metrics.eval_loss std"]) == (1, 0.9, None)


def test_params_a_trainer_reports_are_not_grouped_by_at_first(store, make_experiment, make_run):
    experiment_id = make_experiment()
    for rank in (4, 8):  # what the trainer reports follows from the rank: more columns, the same groups
        make_run(experiment_id, config={"lora_rank": rank, "trainable_params": 100 * rank, "total_params": 10_000 + 100 * rank})
    frame = run_attributes(store.list_runs(experiment_id))

    assert default_group_keys(frame) == ["params.lora_rank"]
    assert "params.trainable_params" in varying_params(frame)  # still offered, to pick by hand


def test_a_run_without_params_does_not_make_every_param_vary(store, make_experiment, make_run):
    """A script's run beside the dashboard's, which set every param: only the param the runs set apart varies."""
    experiment_id = make_experiment()
    for rank in (4, 8):
        make_run(experiment_id, config={"lora_rank": rank, "base_model": "tiny-base", "batch_size": 16})
    store.create_run(experiment_id, {})  # as a script's `tracking.start_run` that logs no params makes it
    frame = run_attributes(store.list_runs(experiment_id))

    assert varying_params(frame) == ["params.lora_rank"]
    assert default_group_keys(frame) == ["params.lora_rank"]


def test_an_importers_bookkeeping_is_not_grouped_by_at_first(store, make_experiment, make_run):
    experiment_id = make_experiment()
    for rate, source in ((0.1, "mlflow:a1"), (0.1, "mlflow:b2"), (0.2, "mlflow:c3")):
        make_run(experiment_id, config={"learning_rate": rate, "import.source": source, "import.started_at": source})
    frame = run_attributes(store.list_runs(experiment_id))

    assert default_group_keys(frame) == ["params.learning_rate"]  # not a group per run


def test_a_drawn_param_that_leaves_every_run_alone_is_not_grouped_by_at_first(store, make_experiment, make_run):
    """A random search's learning rate, one a run, beside a rank and a scheduler: 8 runs made 8 groups of one."""
    experiment_id = make_experiment()
    for index, (rank, scheduler) in enumerate([(8, "cosine"), (16, "linear")] * 4):
        make_run(experiment_id, config={"learning_rate": 0.001 * (index + 1), "lora_rank": rank, "scheduler": scheduler})
    frame = run_attributes(store.list_runs(experiment_id))

    keys = default_group_keys(frame)

    assert keys == ["params.lora_rank", "params.scheduler"]
    assert group_runs(frame, keys, [])["runs"].to_list() == [4, 4]


def test_the_std_is_the_sample_std_not_the_population_std(seeds):
    groups = group_runs(seeds, ["params.learning_rate"], ["metrics.eval_loss"])

    three = groups.filter(pl.col("params.learning_rate") == 0.01)["metrics.eval_loss std"].item()

    assert three != pytest.approx(math.sqrt(0.0032 / 3))  # population std: 0.0327
    assert three == pytest.approx(math.sqrt(0.0032 / 2))


def test_without_group_keys_every_run_is_one_group(seeds):
    groups = group_runs(seeds, [], ["metrics.eval_loss"])

    assert groups["runs"].to_list() == [6]
    assert groups["metrics.eval_loss mean"].item() == pytest.approx(sum(LOSSES.values()) / 6)
    assert groups["run_ids"].to_list() == [sorted(seeds["id"].to_list())]


def test_a_metric_some_runs_lack_counts_only_the_runs_that_logged_it(store, make_experiment, make_run):
    experiment_id = make_experiment()
    make_run(experiment_id, config={"seed": 1}, metrics={"eval_loss": [0.2], "bleu": [10.0]})
    make_run(experiment_id, config={"seed": 2}, metrics={"eval_loss": [0.4]})

    groups = group_runs(run_attributes(store.list_runs(experiment_id)), [], ["metrics.eval_loss", "metrics.bleu"])

    row = groups.row(0, named=True)
    assert (row["runs"], row["metrics.eval_loss n"], row["metrics.bleu n"], row["metrics.bleu mean"]) == (2, 2, 1, 10.0)


def test_params_of_every_kind_become_columns_that_group(store, make_experiment, make_run):
    experiment_id = make_experiment()
    make_run(experiment_id, config={"target_modules": ["fc1", "fc2"], "lora_alpha": 16, "lr_schedule": "cosine"})
    make_run(experiment_id, config={"target_modules": ["fc1"], "lora_alpha": 16.5})

    frame = run_attributes(store.list_runs(experiment_id))

    assert frame["params.target_modules"].to_list() == ["fc1", "fc1, fc2"]
    assert frame["params.lora_alpha"].dtype == pl.Float64 and frame["params.lr_schedule"].to_list() == [None, "cosine"]
    assert varying_params(frame) == ["params.lora_alpha", "params.lr_schedule", "params.target_modules"]
    assert group_labels(frame, ["params.lr_schedule"]) == {
        frame["id"][0]: "lr_schedule=—",
        frame["id"][1]: "lr_schedule=cosine",
    }


def test_an_unknown_group_key_is_refused():
    with pytest.raises(ValueError, match="no column params.lr among"):
        group_runs(pl.DataFrame({"id": [1]}), ["params.lr"], [])


# -- curves by group ----------------------------------------------------------------------------------
def series(curves: dict[int, list[float]]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"run_id": run_id, "key": "loss", "step": step, "value": value, "wall_time": datetime(2026, 1, 1)}
            for run_id, values in curves.items()
            for step, value in enumerate(values)
        ]
    )


def test_a_group_curve_is_the_mean_of_its_runs_at_each_step_with_a_one_std_band():
    curves = series({1: [1.0, 0.6], 2: [3.0, 0.8], 3: [2.0, 0.7], 4: [5.0, 5.0]})
    groups = {1: "lr=0.01", 2: "lr=0.01", 3: "lr=0.01", 4: "lr=1"}

    stats = group_series(curves, "loss", groups)

    first = stats.filter((pl.col("group") == "lr=0.01") & (pl.col("step") == 0)).row(0, named=True)
    # step 0: values 1, 3, 2 -> mean 2, sample std sqrt((1 + 1 + 0) / 2) = 1; band 1 .. 3
    assert (first["mean"], first["std"], first["runs"], first["low"], first["high"]) == (2.0, 1.0, 3, 1.0, 3.0)
    alone = stats.filter(pl.col("group") == "lr=1").row(0, named=True)
    assert (alone["mean"], alone["std"], alone["low"], alone["high"]) == (5.0, None, 5.0, 5.0)


def test_runs_downsampled_to_different_steps_are_binned_alike_before_averaging():
    curves = pl.concat(
        [
            series({1: [1.0] * 100}),
            series({2: [3.0] * 100}).filter(pl.col("step") % 2 == 1),  # only odd steps kept
        ]
    )

    stats = group_series(curves, "loss", {1: "g", 2: "g"}, buckets=10)

    assert stats.height == 10
    assert stats["mean"].to_list() == [2.0] * 10 and stats["runs"].to_list() == [2] * 10


def test_the_group_chart_is_valid_vega_lite_with_a_band_a_mean_line_and_a_tooltip():
    curves = series({1: [1.0, 0.6], 2: [3.0, 0.8]})

    spec = group_spec(curves, "loss", {1: "seed group", 2: "seed group"}, options=ChartOptions())

    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks == ["area", "line", "circle"]
    assert spec["layer"][0]["encoding"]["y"]["field"] == "low" and spec["layer"][0]["encoding"]["y2"] == {"field": "high"}
    assert spec["layer"][1]["encoding"]["y"]["field"] == "mean"
    rows = {name: frame.to_dicts() for name, frame in spec["datasets"].items()}
    alt.LayerChart.from_dict({**spec, "datasets": rows})  # raises if the spec breaks Vega-Lite's schema


def test_runs_group_by_a_tag_like_by_a_param(store, make_experiment, make_run):
    experiment_id = make_experiment()
    for base, loss in [("llama", 0.2), ("llama", 0.4), ("mistral", 0.9)]:
        run_id = make_run(experiment_id, config={"seed": 1}, metrics={"eval_loss": [1.0, loss]})
        store.set_tags("run", run_id, {"base": base})
    frame = run_attributes(store.list_runs(experiment_id))

    groups = group_runs(frame, ["tags.base"], ["metrics.eval_loss"])

    by_base = {row["tags.base"]: row for row in groups.iter_rows(named=True)}
    assert by_base["llama"]["runs"] == 2
    assert by_base["llama"]["metrics.eval_loss mean"] == pytest.approx(0.3)
    # deviations ±0.1 over two runs: sample std sqrt(0.02 / 1)
    assert by_base["llama"]["metrics.eval_loss std"] == pytest.approx(math.sqrt(0.02))
    assert by_base["mistral"]["runs"] == 1
