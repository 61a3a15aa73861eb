"""Metric charts: smoothing like TensorBoard, a y range that survives a diverged run, bands for long noisy curves,
20 distinguishable runs, log and time axes, a page's point budget, sparklines."""

import io
import itertools
import math
from datetime import datetime, timedelta

import altair as alt
import polars as pl
import pytest
from polars.testing import assert_series_equal

from core.charts import (
    PALETTE,
    PANEL_HEIGHT,
    ChartOptions,
    bucketed,
    default_panels,
    family_colours,
    metric_panels,
    metric_spec,
    points_per_curve,
    robust_range,
    run_colours,
    run_label,
    run_labels,
    smooth,
    sparklines,
)
from tests.core.colour_difference import delta_e, delta_e_lab

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
    """The rows the chart draws, from the frame under the spec's datasets."""
    return spec["datasets"][spec["data"]["name"]].to_dicts()


def layer(spec: dict, mark: str, field: str | None = None) -> dict:
    """The layer drawing this mark (and y field)."""
    return next(
        item for item in spec["layer"] if item["mark"]["type"] == mark and field in (None, item["encoding"]["y"]["field"])
    )


def as_altair(spec: dict) -> alt.LayerChart:
    """The spec read back by Altair, which checks it against the Vega-Lite schema."""
    rows = {name: frame.to_dicts() for name, frame in spec["datasets"].items()}
    return alt.LayerChart.from_dict({**spec, "datasets": rows})


def spiky_sweep(runs: int = 5, steps: int = 200) -> pl.DataFrame:
    """Decaying losses from 2.0; the last run spikes to 100x for its final fifth."""
    curves = []
    for run_id in range(1, runs + 1):
        values = [2.0 / math.sqrt(step) + 0.01 * run_id for step in range(1, steps + 1)]
        if run_id == runs:
            values = [value * (100 if step > steps * 0.8 else 1) for step, value in enumerate(values, start=1)]
        curves.append((run_id, "loss", values))
    return make_series(*curves)


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


@pytest.mark.parametrize(
    "options",
    [
        ChartOptions(),
        ChartOptions(smoothing=0.6, log_scale=True, x="elapsed"),
        ChartOptions(x="wall_time", ignore_outliers=False, buckets=10),
    ],
)
def test_every_spec_is_valid_vega_lite(options):
    series = make_series((1, "loss", [float(v) for v in range(1, 60)]), (2, "loss", [2.0, 1.0]))

    as_altair(metric_spec(series, "loss", options=options))


def test_a_chart_draws_one_line_per_run_labelled_by_name_and_id():
    series = make_series((1, "loss", [1.0, 0.5]), (2, "loss", [2.0, 1.0]), (1, "acc", [0.1, 0.2]))

    spec = metric_spec(series, "loss", run_names={1: "baseline"})

    line = layer(spec, "line")
    assert spec["title"]["text"] == "loss"
    assert line["encoding"]["color"]["field"] == "run"
    assert line["encoding"]["color"]["scale"]["domain"] == ["baseline (#1)", "#2"]
    assert line["encoding"]["y"]["field"] == "value"
    assert [(row["run"], row["step"], row["value"]) for row in data_of(spec)] == [
        ("baseline (#1)", 0, 1.0),
        ("baseline (#1)", 1, 0.5),
        ("#2", 0, 2.0),
        ("#2", 1, 1.0),
    ]


def test_a_panels_legend_lists_only_the_runs_that_logged_its_metric_and_colours_stay_the_same():
    series = make_series((1, "loss", [1.0]), (2, "loss", [2.0]), (2, "eval_loss", [0.5]), (3, "loss", [3.0]))

    loss, eval_loss = (layer(spec, "line")["encoding"]["color"] for spec in metric_panels(series, ["loss", "eval_loss"]))

    assert loss["scale"] == eval_loss["scale"]  # run 2 has one colour on every panel
    assert "values" not in loss["legend"]
    assert eval_loss["legend"]["values"] == ["#2"]
    as_altair(metric_panels(series, ["eval_loss"])[0])


@pytest.mark.parametrize(("runs", "columns"), [(11, None), (12, 2), (14, 2), (20, 2)])
def test_a_legend_of_many_runs_keeps_every_entry_within_the_panels_height(runs, columns):
    """With the default spacing a 260-pixel panel cut its legend after the 7th of 12 runs; with 14 rows in one column,
    below the title and the outliers' note, after the 12th of 14."""
    series = make_series(*((run, "loss", [1.0, 0.5]) for run in range(1, runs + 1)))

    legend = layer(metric_panels(series, ["loss"])[0], "line")["encoding"]["color"]["legend"]

    assert legend.get("columns") == columns
    rows = -(-runs // (columns or 1))
    assert (legend["clipHeight"] + legend["rowPadding"]) * rows <= PANEL_HEIGHT - 80  # below the titles, the note, the legend's own


def test_a_run_with_one_point_of_a_metric_shows_it_as_a_dot_on_whole_steps():
    series = make_series((1, "eval_loss", [0.9, 0.7, 0.5]), (2, "eval_loss", [0.6]))

    spec = metric_spec(series, "eval_loss")

    as_altair(spec)
    dots = next(item for item in spec["layer"] if item.get("transform"))
    assert dots["mark"]["type"] == "circle" and dots["mark"]["opacity"] == 1
    assert dots["transform"] == [{"filter": {"field": "run", "oneOf": ["#2"]}}]  # a line of one point draws nothing
    assert layer(spec, "line")["encoding"]["x"]["axis"] == {"format": "d"}
    assert not any(item.get("transform") for item in metric_spec(series.filter(pl.col("run_id") == 1), "eval_loss")["layer"])


def test_a_run_with_one_point_does_not_make_a_normal_curves_start_an_outlier():
    curve = [2.2, 1.6, 1.2, 0.9, 0.7, 0.6, 0.5, 0.46]  # decays smoothly, as an eval loss does
    series = make_series((1, "eval_loss", curve), (2, "eval_loss", [0.47]), (3, "eval_loss", [0.45]), (4, "eval_loss", [0.46]))

    low, high = robust_range(series)

    assert low < 0.45 and high > 2.2


def test_runs_of_one_point_each_spread_over_a_range_are_all_in_it():
    finals = [0.2 + 0.012 * index for index in range(25)]  # 25 runs, each logging its eval once, 0.2 to 0.49
    series = make_series(*((run_id, "eval_loss", [value]) for run_id, value in enumerate(finals, start=1)))

    low, high = robust_range(series)

    assert low < 0.2 and high > max(finals)


def test_a_page_opens_on_two_different_panels_when_its_primary_metric_is_loss_itself():
    assert default_panels(["accuracy", "loss"], ["loss", "loss"]) == ["loss", "accuracy"]
    assert default_panels(["eval_loss", "loss", "lr"], ["eval_loss", "loss"]) == ["eval_loss", "loss"]
    assert default_panels(["a", "b", "c"], ["a", "b", "c"]) == ["a", "b", "c"]  # all preferred: all drawn


def test_panels_are_full_width_and_follow_the_keys_asked_in_order():
    series = make_series((1, "loss", [1.0]), (1, "acc", [0.2]), (1, "lr", [1e-4]))

    specs = metric_panels(series, ["lr", "loss"])

    assert [spec["title"]["text"] for spec in specs] == ["lr", "loss"]
    assert all(spec["width"] == "container" for spec in specs)


def test_hovering_a_point_shows_run_step_and_value():
    spec = metric_spec(make_series((1, "loss", [1.0, 0.5])), "loss")

    tooltip = layer(spec, "circle")["encoding"]["tooltip"]
    assert [tip["field"] for tip in tooltip] == ["run", "step", "value"]


def test_x_axis_is_step_by_default_and_only_the_chosen_x_travels():
    spec = metric_spec(make_series((1, "loss", [1.0, 2.0])), "loss")

    assert layer(spec, "line")["encoding"]["x"]["field"] == "step"
    assert set(data_of(spec)[0]) == {"run", "step", "value", "low", "high"}


def test_wall_time_x_axis_is_temporal():
    spec = metric_spec(make_series((1, "loss", [1.0, 2.0])), "loss", options=ChartOptions(x="wall_time"))

    x = layer(spec, "line")["encoding"]["x"]
    assert (x["field"], x["type"], x["title"]) == ("wall_time", "temporal", "wall time")
    assert data_of(spec)[1]["wall_time"] == START + timedelta(seconds=2)


@pytest.mark.parametrize(("seconds_per_step", "labels"), [(2.0, "%H:%M:%S"), (86_400.0, "%b %d %H:%M")])
def test_wall_time_ticks_read_as_clock_times_within_a_day_and_as_dates_beyond(seconds_per_step, labels):
    """A run of seconds had ticks reading ".900" and ".400": Vega's own labels for fractions of a second."""
    series = make_series((1, "loss", [1.0, 0.5, 0.3]), seconds_per_step=seconds_per_step)

    spec = metric_spec(series, "loss", options=ChartOptions(x="wall_time"))

    assert layer(spec, "line")["encoding"]["x"]["axis"]["format"] == labels
    as_altair(spec)


def test_relative_time_counts_seconds_from_each_runs_first_point():
    series = make_series((1, "loss", [1.0, 2.0, 3.0]), (2, "loss", [1.0, 2.0]), offset={2: 3600})

    spec = metric_spec(series, "loss", options=ChartOptions(x="elapsed"))

    assert layer(spec, "line")["encoding"]["x"]["title"] == "relative time (s)"
    assert [(row["run"], row["elapsed"]) for row in data_of(spec)] == [
        ("#1", 0.0),
        ("#1", 2.0),
        ("#1", 4.0),
        ("#2", 0.0),
        ("#2", 2.0),
    ]


def test_relative_time_counts_from_the_runs_first_point_of_any_key():
    series = make_series((1, "loss", [1.0, 2.0]), (1, "eval_loss", [1.0]))
    series = series.with_columns(
        wall_time=pl.when(pl.col("key") == "eval_loss").then(pl.col("wall_time") + timedelta(seconds=10)).otherwise("wall_time")
    )

    spec = metric_spec(series, "eval_loss", options=ChartOptions(x="elapsed"))

    assert [row["elapsed"] for row in data_of(spec)] == [10.0]


@pytest.mark.parametrize("options", [{"x": "epoch"}, {"buckets": 1}])
def test_unknown_x_axis_or_too_few_buckets_are_rejected(options):
    with pytest.raises(ValueError, match="x must be one of|at least 2 buckets"):
        ChartOptions(**options)


def test_dragging_pans_scrolling_zooms_and_a_legend_click_highlights_one_run():
    spec = metric_spec(make_series((1, "loss", [1.0]), (2, "loss", [2.0])), "loss")

    line = layer(spec, "line")
    params = {param["name"]: param for param in line["params"]}
    assert params["zoom"]["bind"] == "scales" and params["zoom"]["select"]["encodings"] == ["x", "y"]
    assert params["pick"]["bind"] == "legend" and params["pick"]["select"]["fields"] == ["run"]
    assert line["encoding"]["opacity"] == {"condition": {"param": "pick", "value": 1.0}, "value": pytest.approx(0.12)}


def test_smoothing_draws_the_smoothed_line_over_a_faint_raw_line():
    spec = metric_spec(make_series((1, "loss", [1.0, 3.0])), "loss", options=ChartOptions(smoothing=0.5))

    raw, smoothed = layer(spec, "line", "value"), layer(spec, "line", "smoothed")
    assert raw["encoding"]["opacity"]["condition"]["value"] == 0.25
    assert smoothed["encoding"]["opacity"]["condition"]["value"] == 1.0
    assert "smoothed" in [tip["field"] for tip in layer(spec, "circle")["encoding"]["tooltip"]]
    assert [row["smoothed"] for row in data_of(spec)] == pytest.approx([1.0, 7 / 3])


def test_log_scale_hides_non_positive_points_and_says_so():
    series = make_series((1, "loss", [1.0, 0.0, -2.0, 0.5]))

    spec = metric_spec(series, "loss", options=ChartOptions(log_scale=True, ignore_outliers=False))

    assert layer(spec, "line")["encoding"]["y"]["scale"] == {"type": "log"}
    assert [row["value"] for row in data_of(spec)] == [1.0, 0.5]
    assert spec["title"]["subtitle"] == "2 points ≤ 0 hidden on the log scale"


def test_log_scale_with_smoothing_smooths_only_the_points_it_draws():
    options = ChartOptions(log_scale=True, smoothing=0.5)
    spec = metric_spec(make_series((1, "loss", [1.0, -5.0, 3.0])), "loss", options=options)

    assert all(item["encoding"]["y"]["scale"]["type"] == "log" for item in spec["layer"])
    assert [row["smoothed"] for row in data_of(spec)] == pytest.approx(tensorboard_ema([1.0, 3.0], 0.5))


def test_showing_outliers_keeps_every_point_without_a_subtitle():
    spec = metric_spec(make_series((1, "loss", [1.0, 0.0, -2.0])), "loss", options=ChartOptions(ignore_outliers=False))

    assert layer(spec, "line")["encoding"]["y"]["scale"] == {"zero": False}
    assert len(data_of(spec)) == 3
    assert "subtitle" not in spec["title"]


def test_non_finite_values_reach_the_chart_as_gaps_not_nan():
    spec = metric_spec(make_series((1, "loss", [1.0, math.nan, math.inf])), "loss")

    assert [row["value"] for row in data_of(spec)] == [1.0, None, None]


@pytest.mark.parametrize("smoothing", [0.0, 0.6])
def test_empty_frame_gives_a_no_points_yet_chart(smoothing):
    empty = pl.DataFrame(schema=SCHEMA)

    options = ChartOptions(smoothing=smoothing, log_scale=True, x="elapsed", buckets=10)
    spec = metric_spec(empty, "loss", options=options)

    assert spec["title"]["text"] == "loss: no points yet"
    assert data_of(spec) == []


def test_key_without_points_gives_a_no_points_yet_chart():
    spec = metric_spec(make_series((1, "loss", [1.0])), "eval_loss")

    assert spec["title"]["text"] == "eval_loss: no points yet"


# -- a diverged run does not flatten the others ----------------------------------------------------


@pytest.mark.parametrize("runs", [3, 5, 20])  # three: the spike once fell in the quartiles that set the tolerance
def test_a_run_spiking_100x_leaves_the_other_runs_spanning_most_of_the_y_range(runs):
    series = spiky_sweep(runs)

    spec = metric_spec(series, "loss")

    low, high = layer(spec, "line")["encoding"]["y"]["scale"]["domain"]
    others = series.filter(pl.col("run_id") < runs)["value"]
    assert (others.max() - others.min()) / (high - low) > 0.85
    assert low <= others.min() and high >= others.max()
    assert all(item["mark"]["clip"] for item in spec["layer"])


def test_points_beyond_the_range_are_counted_under_the_title():
    spec = metric_spec(spiky_sweep(steps=100), "loss")

    assert spec["title"]["subtitle"] == "20 outlier points beyond the range (show everything to see them)"


def test_a_whole_curve_on_another_scale_is_named_under_the_title_not_counted_as_points():
    """Learning rates of 0.001, 0.001 and 0.5: the third run was "498 outlier points" and looked missing."""
    schedule = [min(step / 10, 1.0) for step in range(1, 201)]
    series = make_series(
        (1, "learning_rate", [0.001 * x for x in schedule]),
        (2, "learning_rate", [0.0012 * x for x in schedule]),
        (3, "learning_rate", [0.0011 * x for x in schedule]),
        (4, "learning_rate", [0.5 * x for x in schedule]),
    )

    spec = metric_spec(series, "learning_rate", run_names={4: "high lr"})

    assert spec["title"]["subtitle"] == "high lr (#4) is mostly off the scale (show everything to see it)"


def test_showing_outliers_fits_the_spike_too():
    spec = metric_spec(spiky_sweep(), "loss", options=ChartOptions(ignore_outliers=False))

    assert "domain" not in layer(spec, "line")["encoding"]["y"]["scale"]


def test_the_range_keeps_every_curves_start_when_no_run_stands_out():
    series = spiky_sweep().filter(pl.col("run_id") < 5)

    low, high = robust_range(series)

    assert low < series["value"].min() and high > series["value"].max()


@pytest.mark.parametrize("log", [False, True])
def test_the_range_of_nothing_is_none(log):
    assert robust_range(pl.DataFrame({"run_id": [1], "value": [math.nan]}), log) is None


def test_the_log_range_is_fitted_on_positive_values_only():
    low, high = robust_range(pl.DataFrame({"run_id": [1, 1, 1], "value": [-1.0, 0.1, 10.0]}), log=True)

    assert 0 < low < 0.1 and high > 10.0


# -- many runs, long curves, the page's budget ----------------------------------------------------


def test_twenty_runs_get_twenty_colours_no_two_alike():
    colours = run_colours(20)

    assert len(set(colours)) == 20
    assert min(delta_e(a, b) for a, b in itertools.combinations(colours, 2)) >= 15  # navy and indigo: 7.9
    assert min(delta_e(colour, "#ffffff") for colour in colours) >= 30  # every line stands out from the white
    assert run_colours(21)[20] == PALETTE[0]


@pytest.mark.parametrize(
    ("first", "second", "expected"),  # Sharma, Wu and Dalal's published CIEDE2000 test pairs
    [
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
        ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
        ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
    ],
)
def test_the_colour_difference_the_palette_is_judged_by_is_ciede2000(first, second, expected):
    assert delta_e_lab(first, second) == pytest.approx(expected, abs=1e-4)


def test_each_run_keeps_its_colour_in_every_panel():
    series = make_series((1, "loss", [1.0]), (2, "loss", [2.0]), (2, "acc", [0.3]), (3, "acc", [0.1]))

    specs = metric_panels(series, ["loss", "acc"], run_names={3: "lr-3e-4"})

    scales = [item["encoding"]["color"]["scale"] for spec in specs for item in spec["layer"]]
    assert all(scale["domain"] == ["#1", "#2", "lr-3e-4 (#3)"] for scale in scales)
    assert all(scale["range"] == list(PALETTE[:3]) for scale in scales)


def test_runs_compared_keep_the_colours_their_experiment_gives_them():
    """run-5 was purple on its experiment's charts and red on the compare page."""
    family = [1, 2, 3, 4, 5, 6]

    assert family_colours([6, 2], family) == [PALETTE[1], PALETTE[5]]  # their places among the experiment's runs
    assert family_colours([2, 6], family) == family_colours([6, 2], family)  # in ID order, as the domain is
    specs = metric_panels(make_series((2, "loss", [1.0]), (6, "loss", [2.0])), ["loss"], family=family)
    assert specs[0]["layer"][0]["encoding"]["color"]["scale"] == {"domain": ["#2", "#6"], "range": [PALETTE[1], PALETTE[5]]}


def test_runs_that_would_share_their_experiments_colour_get_their_own_instead():
    family = list(range(1, 26))  # 25 runs: the 1st and the 21st take the same of the 20 colours

    assert family_colours([1, 21], family) == [PALETTE[0], PALETTE[1]]
    assert family_colours([2, 30], family) == [PALETTE[0], PALETTE[1]]  # a run of another experiment: in ID order
    assert family_colours([3, 4], None) == [PALETTE[0], PALETTE[1]]

def test_run_labels_follow_run_id_order():
    series = make_series((3, "loss", [1.0]), (1, "loss", [1.0]))

    assert run_labels(series, {3: "big"}) == ["#1", "big (#3)"]


def test_a_long_noisy_series_becomes_a_min_max_band_around_its_bucket_means():
    noisy = [100.0 + (50.0 if step % 2 else -50.0) for step in range(1000)]

    spec = metric_spec(make_series((1, "samples_per_second", noisy)), "samples_per_second", options=ChartOptions(buckets=100))

    rows = data_of(spec)
    assert len(rows) == 100
    assert {(row["low"], row["high"], row["value"]) for row in rows} == {(50.0, 150.0, 100.0)}
    band = layer(spec, "area")
    assert (band["encoding"]["y"]["field"], band["encoding"]["y2"]["field"]) == ("low", "high")


@pytest.mark.parametrize("spacing", [1, 4_611_686_018_427_387])  # steps up to near 2^62
def test_a_long_curve_is_bucketed_into_as_many_rows_as_asked_however_large_its_steps(spacing):
    """(step - first) * buckets wrapped around in 64 bits past 2^63: buckets came out scrambled and too many."""
    steps = [index * spacing for index in range(1_000)]
    points = pl.DataFrame({"run_id": 1, "key": "loss", "step": steps, "value": [float(i) for i in range(1_000)]})

    rows = bucketed(points, 100)

    assert rows.height == 100
    assert rows["step"].to_list() == steps[::10]  # each bucket's first point, in order
    assert rows["value"].to_list() == [i + 4.5 for i in range(0, 1_000, 10)]


def test_steps_at_the_bucket_edges_of_a_curve_past_2_to_the_63_over_buckets_fall_where_whole_numbers_put_them():
    """Floating point put 140 of 200 such steps in the bucket next door."""
    last, buckets = 2**62 + 12_345, 100
    edges = [-(-k * (last + 1) // buckets) for k in range(1, buckets)]  # the first step of each bucket after the first
    steps = sorted({0, last, *edges, *(edge - 1 for edge in edges)})
    points = pl.DataFrame({"run_id": 1, "key": "loss", "step": steps, "value": [1.0] * len(steps)})

    rows = bucketed(points, buckets)

    assert rows["step"].to_list() == [0, *edges]  # each bucket's first point: exactly at its edge


def test_a_series_short_enough_is_drawn_whole_without_a_band():
    spec = metric_spec(make_series((1, "loss", [3.0, 2.0, 1.0])), "loss", options=ChartOptions(buckets=100))

    assert [row["value"] for row in data_of(spec)] == [3.0, 2.0, 1.0]
    assert "area" not in [item["mark"]["type"] for item in spec["layer"]]


@pytest.mark.parametrize(
    ("runs", "panels", "points"),
    [(1, 1, 500), (20, 2, 250), (20, 6, 100), (200, 2, 50), (10, 3, 250)],
)
def test_points_per_curve_follow_the_charts_width_and_the_number_of_curves(runs, panels, points):
    assert points_per_curve(runs, panels) == points


def test_twenty_runs_of_long_curves_stay_under_300_kb_a_page():
    panels = 6
    buckets = points_per_curve(20, panels)
    series = make_series(*[(run_id, "loss", [math.sin(step) for step in range(2 * buckets)]) for run_id in range(1, 21)])
    sent = 0
    for spec in metric_panels(series, ["loss"] * panels, options=ChartOptions(buckets=buckets, smoothing=0.5)):
        buffer = io.BytesIO()
        spec["datasets"]["points"].write_ipc_stream(buffer)
        sent += len(buffer.getvalue())

    assert sent <= 300_000


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


def test_a_long_run_name_is_shortened_in_the_middle_so_its_id_and_ending_show():
    """Legends cut 'lora-r64-alpha128-...-lr3e-4-cosi' before the ID: two sweep runs could not be told apart."""
    name = "lora-r64-alpha128-dropout0.05-lr3e-4-cosine-warmup500-bs32"

    label = run_label(9, {9: name})

    assert label == "lora-r64-al…rmup500-bs32 (#9)"
    assert run_label(3, {3: "short name"}) == "short name (#3)"
