"""Hyperparameter views: parallel coordinates and a param-vs-metric scatter as valid Vega-Lite, with selected runs
highlighted and a click that names the run to open."""

import altair as alt
import polars as pl
import pytest

from core.hparam_charts import NOT_SET, OPEN, clicked_run, parallel_coordinates_spec, scatter_spec

RUNS = pl.DataFrame(
    {
        "id": [1, 2, 3, 4],
        "name": ["a", "b", "c", "d"],
        "params.learning_rate": [1e-4, 1e-3, 1e-2, 1e-2],
        "params.lora_rank": [4, 8, 16, 16],
        "params.lr_schedule": ["linear", "cosine", "linear", None],
        "metrics.eval_loss": [0.9, 0.5, 0.3, None],
    }
)
PARAMS = ["params.learning_rate", "params.lora_rank", "params.lr_schedule"]


def as_altair(spec: dict):
    """Read back by Altair, which checks the spec against the Vega-Lite schema."""
    rows = {name: frame.to_dicts() for name, frame in spec["datasets"].items()}
    chart = alt.LayerChart if "layer" in spec else alt.Chart
    return chart.from_dict({**spec, "datasets": rows})


def lines(spec: dict) -> pl.DataFrame:
    return spec["datasets"]["lines"]


def test_parallel_coordinates_draw_one_line_per_run_across_the_params_then_the_metric():
    spec = parallel_coordinates_spec(RUNS, PARAMS, "metrics.eval_loss")

    as_altair(spec)
    drawn = lines(spec)
    assert sorted(drawn["id"].unique()) == [1, 2, 3]  # run 4 has no eval_loss
    assert spec["layer"][1]["encoding"]["x"]["sort"] == ["learning_rate", "lora_rank", "lr_schedule", "eval_loss"]
    assert spec["title"]["text"] == "learning_rate, lora_rank, lr_schedule → eval_loss"


def test_the_metric_legend_of_parallel_coordinates_reads_to_4_significant_digits():
    """A diverged run's 2.5e169 showed in the legend as 2.4999999999999998e+169."""
    spec = parallel_coordinates_spec(RUNS, PARAMS, "metrics.eval_loss")

    as_altair(spec)
    colours = [layer["encoding"]["color"] for layer in spec["layer"] if "color" in layer.get("encoding", {})]
    assert len(colours) == 2 and all(colour["legend"]["format"] == ".4~g" for colour in colours)


def test_each_axis_is_scaled_on_its_own_log_for_wide_positive_ranges_and_even_for_categories():
    drawn = lines(parallel_coordinates_spec(RUNS, PARAMS, "metrics.eval_loss"))

    def positions(dimension: str) -> list[float]:
        return drawn.filter(pl.col("dimension") == dimension).sort("id")["position"].to_list()

    assert positions("learning_rate") == pytest.approx([0.0, 0.5, 1.0])  # 1e-4, 1e-3, 1e-2 on a log axis
    assert positions("lora_rank") == pytest.approx([0.0, 1 / 3, 1.0])  # 4, 8, 16 on a linear one
    assert positions("lr_schedule") == pytest.approx([1.0, 0.0, 1.0])  # cosine, linear
    assert positions("eval_loss") == pytest.approx([1.0, 1 / 3, 0.0])


def test_axes_are_labelled_with_their_ends_or_their_categories():
    ticks = parallel_coordinates_spec(RUNS, PARAMS, "metrics.eval_loss")["datasets"]["ticks"]

    labels = {d: ticks.filter(pl.col("dimension") == d)["label"].to_list() for d in ("learning_rate", "lr_schedule")}
    assert labels == {"learning_rate": ["0.0001", "0.01"], "lr_schedule": ["cosine", "linear"]}


def test_selected_runs_are_drawn_thick_and_the_rest_thin():
    spec = parallel_coordinates_spec(RUNS, PARAMS, "metrics.eval_loss", selected=[2])

    drawn = lines(spec)
    assert set(drawn.filter(pl.col("selected"))["id"]) == {2}
    width = spec["layer"][1]["encoding"]["strokeWidth"]
    assert width["condition"]["test"] == "datum.selected" and width["condition"]["value"] > width["value"]


def test_a_click_on_either_view_selects_a_run_by_id():
    for spec in (
        parallel_coordinates_spec(RUNS, PARAMS, "metrics.eval_loss"),
        scatter_spec(RUNS, PARAMS[0], "metrics.eval_loss"),
    ):
        params = [p for layer in spec.get("layer", [spec]) for p in layer.get("params", [])]
        assert [(p["name"], p["select"]["fields"]) for p in params] == [(OPEN, ["id"])]

    assert clicked_run({OPEN: [{"id": 3}]}) == 3
    assert clicked_run({OPEN: []}) is None and clicked_run(None) is None


def test_the_scatter_puts_each_run_at_its_param_and_metric_with_the_selected_ones_highlighted():
    spec = scatter_spec(RUNS, "params.lora_rank", "metrics.eval_loss", selected=[1, 3])

    as_altair(spec)
    assert spec["datasets"]["runs"].select("id", "x", "y", "selected").rows() == [
        (1, 4, 0.9, True),
        (2, 8, 0.5, False),
        (3, 16, 0.3, True),
    ]
    assert spec["encoding"]["x"] == {"field": "x", "type": "quantitative", "title": "lora_rank", "scale": {"zero": False}}
    assert spec["encoding"]["color"]["scale"]["range"][0] != spec["encoding"]["color"]["scale"]["range"][1]


def test_the_scatter_uses_a_log_axis_for_a_wide_positive_param_and_categories_for_text():
    log = scatter_spec(RUNS, "params.learning_rate", "metrics.eval_loss")
    text = scatter_spec(RUNS, "params.lr_schedule", "metrics.eval_loss")

    as_altair(text)
    assert log["encoding"]["x"]["scale"] == {"type": "log"}
    assert text["encoding"]["x"]["type"] == "nominal" and "scale" not in text["encoding"]["x"]


def test_a_run_lacking_a_param_crosses_that_axis_below_it_at_not_set():
    runs = RUNS.with_columns(pl.Series("params.lora_rank", [4, None, 16, 16]))

    spec = parallel_coordinates_spec(runs, PARAMS, "metrics.eval_loss")

    as_altair(spec)
    crossing = lines(spec).filter(pl.col("id") == 2, pl.col("dimension") == "lora_rank").row(0, named=True)
    assert (crossing["position"], crossing["value"]) == (NOT_SET, "not set")
    ticks = spec["datasets"]["ticks"].filter(pl.col("dimension") == "lora_rank")
    assert ticks.rows() == [("lora_rank", 0.0, "4"), ("lora_rank", 1.0, "16"), ("lora_rank", NOT_SET, "not set")]
    assert "not set" not in spec["datasets"]["ticks"].filter(pl.col("dimension") == "learning_rate")["label"].to_list()
