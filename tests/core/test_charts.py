"""Metric charts: smoothing like TensorBoard, one line per run, log and elapsed axes, shared colours, sparklines."""

import math
import warnings
from datetime import datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_series_equal

from core.charts import metric_chart, overlay_charts, run_labels, smooth, sparklines

START = datetime(2026, 1, 1, 12, 0, 0)
SCHEMA = {"run_id": pl.Int64, "key": pl.String, "step": pl.Int64, "value": pl.Float64, "wall_time": pl.Datetime("us")}


def make_series(*curves: tuple[int, str, list[float]], seconds_per_step: float = 2.0, offset: dict[int, float] | None = None):
    """Frames shaped like get_metric_series: (run_id, key, values) curves at steps 0, 1, 2 ..."""
    rows = [
        {
            "run_id": run_id,
            "key": key,
            "step": step,
            "value": value,
            "wall_time": START + timedelta(seconds=(offset or {}).get(run_id, 0) + step * seconds_per_step),
        }
        for run_id, key, values in curves
        for step, value in enumerate(values)
    ]
    return pl.DataFrame(rows, schema=SCHEMA).sort("run_id", "key", "step")


def data_of(spec: dict) -> list[dict]:
    """The rows a (sub-)chart draws, from the datasets of the top-level spec."""
    return spec["datasets"][spec["data"]["name"]]


def layers(spec: dict) -> list[dict]:
    return spec.get("layer", [spec])


def tensorboard_ema(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing loop, written out: EMA from 0, divided by the debias factor."""
    last, smoothed = 0.0, []
    for count, value in enumerate(values, start=1):
        last = last * weight + (1 - weight) * value
        smoothed.append(last / (1 - weight**count))
    return smoothed


# -- smoothing -----------------------------------------------------------------------------------


def test_smoothing_matches_tensorboard_debiased_ema():
    values = [1.0, 3.0, 5.0, 2.0]

    smoothed = smooth(make_series((1, "loss", values)), 0.5)["smoothed"].to_list()

    assert smoothed == pytest.approx(tensorboard_ema(values, 0.5))
    assert smoothed[:3] == pytest.approx([1.0, 7 / 3, 27 / 7])


def test_debiased_smoothing_starts_at_the_first_value_not_zero():
    smoothed = smooth(make_series((1, "loss", [10.0, 10.0, 10.0])), 0.99)["smoothed"]

    assert smoothed.to_list() == pytest.approx([10.0, 10.0, 10.0])


def test_zero_weight_keeps_raw_values():
    series = make_series((1, "loss", [3.0, 1.0, 2.0]))

    assert_series_equal(smooth(series, 0.0)["smoothed"], series["value"], check_names=False)


def test_smoothing_restarts_for_each_run_and_key():
    series = make_series((1, "loss", [1.0, 3.0]), (1, "acc", [0.5, 0.7]), (2, "loss", [8.0, 4.0]))

    smoothed = smooth(series, 0.5)

    for (run_id, key), group in smoothed.group_by("run_id", "key"):
        assert group["smoothed"].to_list() == pytest.approx(tensorboard_ema(group["value"].to_list(), 0.5)), (run_id, key)


def test_smoothing_skips_non_finite_values():
    smoothed = smooth(make_series((1, "loss", [1.0, math.nan, 3.0])), 0.5)["smoothed"].to_list()

    assert smoothed[0] == 1.0 and smoothed[1] is None
    assert smoothed[2] == pytest.approx(tensorboard_ema([1.0, 3.0], 0.5)[1])


@pytest.mark.parametrize("weight", [-0.1, 1.0, 1.5, math.nan])
def test_smoothing_weight_outside_zero_to_one_is_rejected(weight):
    with pytest.raises(ValueError, match="smoothing weight must be at least 0 and below 1"):
        smooth(make_series((1, "loss", [1.0])), weight)


# -- one metric ----------------------------------------------------------------------------------


def test_metric_chart_draws_one_line_per_run_labelled_by_name_and_id():
    series = make_series((1, "loss", [1.0, 0.5]), (2, "loss", [2.0, 1.0]), (1, "acc", [0.1, 0.2]))

    spec = metric_chart(series, "loss", run_names={1: "baseline"}).to_dict()

    assert spec["mark"]["type"] == "line"
    assert spec["title"]["text"] == "loss"
    assert spec["encoding"]["color"]["field"] == "run"
    assert spec["encoding"]["color"]["scale"]["domain"] == ["baseline (#1)", "#2"]
    assert spec["encoding"]["y"]["field"] == "value"
    assert [(row["run"], row["step"], row["value"]) for row in data_of(spec)] == [
        ("baseline (#1)", 0, 1.0),
        ("baseline (#1)", 1, 0.5),
        ("#2", 0, 2.0),
        ("#2", 1, 1.0),
    ]


def test_tooltips_show_run_step_value_and_elapsed():
    spec = metric_chart(make_series((1, "loss", [1.0])), "loss").to_dict()

    assert [tip["field"] for tip in spec["encoding"]["tooltip"]] == ["run", "step", "value", "elapsed"]


def test_x_axis_is_step_by_default():
    spec = metric_chart(make_series((1, "loss", [1.0, 2.0])), "loss").to_dict()

    assert spec["encoding"]["x"]["field"] == "step"


def test_elapsed_x_axis_counts_seconds_from_each_runs_first_point():
    series = make_series((1, "loss", [1.0, 2.0, 3.0]), (2, "loss", [1.0, 2.0]), offset={2: 3600})

    spec = metric_chart(series, "loss", x="elapsed").to_dict()

    assert spec["encoding"]["x"]["field"] == "elapsed"
    assert spec["encoding"]["x"]["title"] == "elapsed (s)"
    assert [(row["run"], row["elapsed"]) for row in data_of(spec)] == [
        ("#1", 0.0),
        ("#1", 2.0),
        ("#1", 4.0),
        ("#2", 0.0),
        ("#2", 2.0),
    ]


def test_elapsed_counts_from_the_runs_first_point_of_any_key():
    series = make_series((1, "loss", [1.0, 2.0]), (1, "eval_loss", [1.0]))
    series = series.with_columns(
        wall_time=pl.when(pl.col("key") == "eval_loss").then(pl.col("wall_time") + timedelta(seconds=10)).otherwise("wall_time")
    )

    spec = metric_chart(series, "eval_loss", x="elapsed").to_dict()

    assert [row["elapsed"] for row in data_of(spec)] == [10.0]


def test_unknown_x_axis_is_rejected():
    with pytest.raises(ValueError, match="x must be one of"):
        metric_chart(make_series((1, "loss", [1.0])), "loss", x="epoch")


def test_zoom_binds_the_x_scale_only():
    spec = metric_chart(make_series((1, "loss", [1.0])), "loss").to_dict()

    assert spec["params"] == [{"name": "zoom", "select": {"type": "interval", "encodings": ["x"]}, "bind": "scales"}]


def test_smoothing_draws_the_smoothed_line_over_a_faint_raw_line():
    spec = metric_chart(make_series((1, "loss", [1.0, 3.0])), "loss", smoothing=0.5).to_dict()

    raw, smoothed = spec["layer"]
    assert (raw["encoding"]["y"]["field"], raw["mark"]["opacity"]) == ("value", 0.25)
    assert smoothed["encoding"]["y"]["field"] == "smoothed"
    assert "opacity" not in smoothed["mark"]
    assert "smoothed" in [tip["field"] for tip in smoothed["encoding"]["tooltip"]]
    assert [row["smoothed"] for row in data_of(spec)] == pytest.approx([1.0, 7 / 3])


def test_log_scale_hides_non_positive_points_and_says_so():
    series = make_series((1, "loss", [1.0, 0.0, -2.0, 0.5]))

    spec = metric_chart(series, "loss", log_scale=True).to_dict()

    assert spec["encoding"]["y"]["scale"] == {"type": "log"}
    assert [row["value"] for row in data_of(spec)] == [1.0, 0.5]
    assert spec["title"]["subtitle"] == "2 points ≤ 0 hidden on the log scale"


def test_log_scale_with_smoothing_smooths_only_the_points_it_draws():
    spec = metric_chart(make_series((1, "loss", [1.0, -5.0, 3.0])), "loss", log_scale=True, smoothing=0.5).to_dict()

    assert all(layer["encoding"]["y"]["scale"] == {"type": "log"} for layer in spec["layer"])
    assert [row["smoothed"] for row in data_of(spec)] == pytest.approx(tensorboard_ema([1.0, 3.0], 0.5))


def test_linear_scale_keeps_every_point_without_a_subtitle():
    spec = metric_chart(make_series((1, "loss", [1.0, 0.0, -2.0])), "loss").to_dict()

    assert spec["encoding"]["y"]["scale"] == {"zero": False}
    assert len(data_of(spec)) == 3
    assert "subtitle" not in spec["title"]


def test_non_finite_values_reach_the_chart_as_gaps_not_nan():
    spec = metric_chart(make_series((1, "loss", [1.0, math.nan, math.inf])), "loss").to_dict()

    assert [row["value"] for row in data_of(spec)] == [1.0, None, None]


@pytest.mark.parametrize("smoothing", [0.0, 0.6])
def test_empty_frame_gives_a_no_points_yet_chart(smoothing):
    empty = pl.DataFrame(schema=SCHEMA)

    spec = metric_chart(empty, "loss", smoothing=smoothing, log_scale=True, x="elapsed").to_dict()

    assert spec["title"]["text"] == "loss: no points yet"
    assert data_of(spec) == []


def test_key_without_points_gives_a_no_points_yet_chart():
    spec = metric_chart(make_series((1, "loss", [1.0])), "eval_loss").to_dict()

    assert spec["title"]["text"] == "eval_loss: no points yet"


# -- several metrics -----------------------------------------------------------------------------


def test_overlay_gives_each_run_one_colour_in_every_chart_and_one_legend():
    series = make_series((1, "loss", [1.0, 0.5]), (2, "loss", [2.0]), (2, "acc", [0.3]), (3, "acc", [0.1]))

    spec = overlay_charts(series, ["loss", "acc"], run_names={3: "lr-3e-4"}, smoothing=0.5).to_dict()

    domains = [layer["encoding"]["color"]["scale"]["domain"] for chart in spec["concat"] for layer in layers(chart)]
    assert len(domains) == 4
    assert all(domain == ["#1", "#2", "lr-3e-4 (#3)"] for domain in domains)
    assert spec["resolve"] == {"scale": {"color": "shared"}, "legend": {"color": "shared"}}


def test_overlay_draws_one_small_chart_per_key_in_columns():
    series = make_series((1, "loss", [1.0]), (1, "acc", [0.2]), (1, "lr", [1e-4]))

    spec = overlay_charts(series, ["loss", "acc", "lr"], columns=3, log_scale=True, x="elapsed").to_dict()

    assert spec["columns"] == 3
    assert [chart["title"]["text"] for chart in spec["concat"]] == ["loss", "acc", "lr"]
    assert all((chart["width"], chart["height"]) == (280, 180) for chart in spec["concat"])
    assert all(chart["encoding"]["x"]["field"] == "elapsed" for chart in spec["concat"])
    assert all(chart["encoding"]["y"]["scale"] == {"type": "log"} for chart in spec["concat"])


def test_overlay_charts_zoom_independently_without_altair_warnings():
    series = make_series((1, "loss", [1.0]), (1, "acc", [0.2]))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = overlay_charts(series, ["loss", "acc"], smoothing=0.5).to_dict()

    assert [param["name"] for param in spec["params"]] == ["zoom_0", "zoom_1"]


def test_run_labels_follow_run_id_order():
    series = make_series((3, "loss", [1.0]), (1, "loss", [1.0]))

    assert run_labels(series, {3: "big"}) == ["#1", "big (#3)"]


# -- sparklines ----------------------------------------------------------------------------------


def test_sparklines_spread_points_evenly_from_first_to_last():
    series = make_series((1, "loss", [float(step) for step in range(100)]))

    assert sparklines(series, "loss", points=5) == {1: [0.0, 25.0, 50.0, 74.0, 99.0]}


def test_sparklines_keep_short_series_whole_in_run_order():
    series = make_series((2, "loss", [3.0, 2.0]), (1, "loss", [5.0, 4.0, 3.0]), (1, "acc", [0.9]))

    lines = sparklines(series, "loss")

    assert list(lines) == [1, 2]
    assert lines == {1: [5.0, 4.0, 3.0], 2: [3.0, 2.0]}


def test_sparklines_default_to_thirty_points():
    series = make_series((1, "loss", [float(step) for step in range(1000)]))

    assert len(sparklines(series, "loss")[1]) == 30


@pytest.mark.parametrize("points", [1, 0, True, 2.5])
def test_sparklines_need_at_least_two_points(points):
    with pytest.raises(ValueError, match="at least 2 points"):
        sparklines(make_series((1, "loss", [1.0])), "loss", points=points)
