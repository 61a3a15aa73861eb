"""The experiment page's views over many runs: groups over seeds, group curves, hyperparameter charts."""

import json

import pytest

from core.writer import MetricWriter
from tests.ui.conftest import SAMPLE
from tests.ui.test_pages import table_with
from ui.common import fitting_width

# eval_loss by (learning_rate, seed)
LOSSES = {(0.01, 1): 0.30, (0.01, 2): 0.34, (0.01, 3): 0.38, (0.1, 1): 0.5, (0.1, 2): 0.7}


@pytest.fixture
def seeds(app_store):
    experiment_id = app_store.create_experiment({"name": "seeds", "dataset": SAMPLE})
    ids = {}
    for (rate, seed), loss in LOSSES.items():
        run_id = app_store.create_run(experiment_id, {"learning_rate": rate, "seed": seed, "epochs": 2})
        with MetricWriter(app_store) as writer:
            writer.log_series(run_id, "eval_loss", [1, 2, 3], [1.0, (1.0 + loss) / 2, loss])
        app_store.mark_running(run_id, worker="host:1")
        app_store.complete_run(run_id)
        ids[(rate, seed)] = run_id
    return experiment_id, ids


def test_runs_are_grouped_by_everything_but_the_seed_with_mean_and_std(open_page, seeds):
    experiment_id, _ = seeds

    app = open_page("pages/experiment.py", experiment=str(experiment_id))

    assert app.multiselect(key="group_by").value == ["params.learning_rate"]
    groups = table_with(app, "runs")
    assert groups["learning_rate"].tolist() == ["0.01", "0.1"]
    assert groups["runs"].tolist() == [3, 2]
    assert groups["eval_loss"].tolist() == ["0.34 ± 0.04", "0.6 ± 0.14"]
    columns = json.loads(next(frame for frame in app.dataframe if "runs" in frame.value.columns).proto.columns)
    assert columns["eval_loss"]["width"] >= fitting_width(["0.34 ± 0.04"])  # whole at 1440 px: "0.0355 ± 0.01" was cut
    assert columns["eval_loss"]["alignment"] == "right"  # a number, as in the other tables


def test_grouping_by_the_seed_too_makes_one_group_per_run(open_page, seeds):
    experiment_id, _ = seeds
    app = open_page("pages/experiment.py", experiment=str(experiment_id))

    app.multiselect(key="group_by").select("params.seed").run()

    assert table_with(app, "runs")["runs"].tolist() == [1] * 5


def test_group_by_follows_the_params_that_vary_until_the_user_picks(open_page, seeds, app_store):
    experiment_id, _ = seeds
    app = open_page("pages/experiment.py", experiment=str(experiment_id))
    wider = app_store.create_run(experiment_id, {"learning_rate": 0.01, "seed": 1, "epochs": 2, "lora_rank": 16})
    app_store.mark_running(wider, worker="host:1")

    app.run()  # the page refreshing itself, with a run that varies a new param

    assert app.multiselect(key="group_by").value == ["params.learning_rate", "params.lora_rank"]
    app.multiselect(key="group_by").unselect("params.lora_rank").run()
    app_store.complete_run(wider)
    app.run()
    assert app.multiselect(key="group_by").value == ["params.learning_rate"]  # the user's pick stays


def test_group_curves_draw_one_mean_line_and_band_per_group(open_page, seeds):
    experiment_id, _ = seeds
    app = open_page("pages/experiment.py", experiment=str(experiment_id))

    app.toggle(key="group_curves").set_value(True).run()

    [chart] = [chart for chart in app.get("vega_lite_chart") if "mean of each group" in chart.proto.spec]
    assert '"domain": ["learning_rate=0.01", "learning_rate=0.1"]' in chart.proto.spec


def test_parallel_coordinates_render_the_varying_params_against_the_primary_metric(open_page, seeds):
    experiment_id, _ = seeds

    app = open_page("pages/experiment.py", experiment=str(experiment_id))

    assert app.multiselect(key="hp_params").value == ["params.learning_rate", "params.seed"]
    assert app.selectbox(key="hp_metric").value == "metrics.eval_loss"
    spec = next(chart.proto.spec for chart in app.get("vega_lite_chart") if "learning_rate, seed" in chart.proto.spec)
    assert '"name": "open"' in spec


def test_the_scatter_renders_and_highlights_the_runs_ticked_to_compare(open_page, seeds):
    experiment_id, ids = seeds
    app = open_page("pages/experiment.py", experiment=str(experiment_id))

    app.multiselect(key="compare_pick").select(ids[(0.1, 2)]).run()
    app.button_group(key="hp_view").set_value("Scatter").run()

    assert app.selectbox(key="hp_param").value == "params.learning_rate"
    assert "Runs ticked to compare are highlighted." in [caption.value for caption in app.caption]
    assert any("eval_loss by learning_rate" in chart.proto.spec for chart in app.get("vega_lite_chart"))
