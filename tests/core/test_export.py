"""Export: the runs table and full curves as CSV and Parquet bytes, read back with Polars."""

import io

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core import export
from core.errors import ValidationError
from core.writer import MetricWriter

READ = {
    "csv": lambda data: pl.read_csv(io.BytesIO(data), try_parse_dates=True),
    "parquet": lambda data: pl.read_parquet(io.BytesIO(data)),
}


@pytest.fixture
def runs(store, make_experiment, make_run):
    experiment_id = make_experiment("sentiment")
    first = make_run(experiment_id, metrics={"eval_loss": [0.9, 0.4, 0.6]}, config={"learning_rate": 0.001, "lora_r": 8})
    second = make_run(experiment_id, status="failed", metrics={"loss": [2.0, 3.0]}, config={"learning_rate": 0.1})
    store.set_tags("run", first, {"base": "llama"})
    return first, second


@pytest.mark.parametrize("kind", export.FORMATS)
def test_the_runs_table_holds_params_tags_and_last_min_max_of_each_metric(store, runs, kind):
    first, second = runs

    table = READ[kind](export.file_bytes(export.runs_table(store.search_frame()), kind))

    assert table["run_id"].to_list() == [second, first]
    row = table.filter(pl.col("run_id") == first).row(0, named=True)
    assert (row["params.learning_rate"], row["params.lora_r"], row["tags.base"]) == (0.001, 8, "llama")
    assert (row["metrics.eval_loss.last"], row["metrics.eval_loss.min"], row["metrics.eval_loss.max"]) == (0.6, 0.4, 0.9)
    other = table.filter(pl.col("run_id") == second).row(0, named=True)
    assert (other["status"], other["metrics.loss.max"], other["metrics.eval_loss.last"]) == ("failed", 3.0, None)


def test_an_export_of_some_runs_has_no_empty_columns_for_what_only_the_others_have(store, runs):
    first, _ = runs
    chosen = store.search_frame().filter(pl.col("id") == first)

    table = export.runs_table(chosen)

    assert "metrics.loss.last" not in table.columns and "metrics.eval_loss.last" in table.columns
    assert {"params.lora_r", "tags.base"} <= set(table.columns)


def test_parquet_keeps_the_frame_exactly(store, runs):
    frame = export.runs_table(store.search_frame())

    assert_frame_equal(READ["parquet"](export.file_bytes(frame, "parquet")), frame)


@pytest.mark.parametrize("kind", export.FORMATS)
def test_curves_hold_every_point_of_the_chosen_runs_not_a_downsample(store, make_experiment, kind):
    experiment_id = make_experiment()
    long_run, other = store.create_run(experiment_id, {}), store.create_run(experiment_id, {})
    with MetricWriter(store) as writer:
        writer.log_series(long_run, "loss", list(range(1, 3001)), [1.0 / step for step in range(1, 3001)])
        writer.log_series(other, "loss", [1], [5.0])

    series = store.get_metric_series([long_run], None, max_points=None)
    exported = READ[kind](export.file_bytes(export.curves(series, {long_run: "run-1"}), kind))

    assert exported.columns == ["run_id", "run", "key", "step", "value", "wall_time"]
    assert exported.height == 3000
    assert exported["step"].to_list() == list(range(1, 3001))
    assert exported["value"][2999] == pytest.approx(1 / 3000)
    assert set(exported["run"]) == {"run-1"}


def test_an_unknown_format_and_too_many_curve_runs_are_refused():
    with pytest.raises(ValidationError, match="export as csv or parquet, not 'xlsx'"):
        export.file_bytes(pl.DataFrame({"a": [1]}), "xlsx")
    with pytest.raises(ValidationError, match="export the curves of at most 50 runs at once; 51 are selected"):
        export.check_curve_runs(list(range(1, 52)))
