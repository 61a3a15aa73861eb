"""Write the importer tests' fixtures with the real tools, and what was written to expected.json.

Needs MLflow 3.17.2 and TensorBoard, which the project does not depend on, so run it apart:

    python -m venv ../venv-fixtures
    grep -v '^pyarrow' requirements.txt | ../venv-fixtures/bin/pip install -r /dev/stdin mlflow==3.17.2 tensorboard==2.21.0
    ../venv-fixtures/bin/python -m tests.importers.make_fixtures

It replaces tests/importers/fixtures/ (an MLflow SQLite store, gzipped, an `mlruns` folder and a
TensorBoard logdir, a few KB each). Wall times are fixed so reruns differ only in MLflow's IDs.
"""

import gzip
import json
import math
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
START_MS = 1_767_261_600_000  # 2026-01-01 10:00 UTC

# name -> (experiment, final status, params, tags, {key: [(step, value)]}); what both MLflow stores get.
RUNS = {
    "lr-3e-4": (
        "sentiment lora",
        "FINISHED",
        {"learning_rate": "0.0003", "epochs": "3", "lora_r": "8"},
        {"team": "nlp", "dataset": "reviews-v2"},
        {
            "loss": [(step, round(1.0 / (1 + step), 6)) for step in range(0, 30)],
            "eval_accuracy": [(step, 0.5 + step / 100) for step in (10, 20, 29)],
            "eval/loss": [(step, 0.9 - step / 100) for step in (10, 20, 29)],
        },
    ),
    "lr-1e-2": (
        "sentiment lora",
        "FAILED",
        {"learning_rate": "0.01", "epochs": "3", "lora_r": "8"},
        {"team": "nlp"},
        {"loss": [(0, 1.0), (1, 3.5), (2, math.nan), (3, math.inf)]},
    ),
    "stopped early": (
        "sentiment lora",
        "KILLED",
        {"learning_rate": "0.001"},
        {},
        {"loss": [(0, 0.9), (1, 0.8), (1, 0.75)]},  # step 1 twice: the later value is the one kept
    ),
    "still going": ("sentiment lora", "RUNNING", {"learning_rate": "0.002"}, {}, {"loss": [(0, 0.95)]}),
    "baseline": ("summaries", "FINISHED", {"model": "t5-small"}, {"note": "first try"}, {"rouge1": [(1, 0.31), (2, 0.35)]}),
}
DELETED = ("thrown away", "summaries")  # a run deleted in MLflow: never imported


def write_mlflow(uri: str, artifacts: Path) -> dict:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiments, runs = {}, {}
    for name, (experiment, status, params, tags, metrics) in RUNS.items():
        if experiment not in experiments:
            experiments[experiment] = client.create_experiment(experiment, artifact_location=str(artifacts / experiment))
        run = client.create_run(experiments[experiment], run_name=name, start_time=START_MS)
        tick = iter(range(1, 10_000))
        points = [
            Metric(key, value, START_MS + 1000 * next(tick), step) for key, series in metrics.items() for step, value in series
        ]
        client.log_batch(
            run.info.run_id,
            metrics=points,
            params=[Param(key, value) for key, value in params.items()],
            tags=[RunTag(key, value) for key, value in tags.items()],
        )
        if status != "RUNNING":
            client.set_terminated(run.info.run_id, status=status, end_time=START_MS + 60_000)
        runs[name] = run.info.run_id
    gone = client.create_run(experiments[DELETED[1]], run_name=DELETED[0], start_time=START_MS)
    client.log_metric(gone.info.run_id, "rouge1", 0.1, step=1, timestamp=START_MS)
    client.set_terminated(gone.info.run_id, end_time=START_MS + 1000)
    client.delete_run(gone.info.run_id)
    return {"runs": runs, "deleted": gone.info.run_id}


def write_tensorboard(logdir: Path) -> dict:
    """Two runs from torch's SummaryWriter (simple values, as PyTorch and tensorboardX write them) and one
    written as TensorFlow 2 does (a scalar tensor with the scalars plugin's metadata)."""
    import numpy as np
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    from torch.utils.tensorboard import SummaryWriter

    wall = START_MS / 1000
    expected = {}
    train = SummaryWriter(str(logdir / "train"))
    for step in range(0, 50, 5):
        train.add_scalar("loss", 2.0 / (1 + step), step, walltime=wall + step)
        train.add_scalar("learning_rate", 1e-4, step, walltime=wall + step)
    train.add_scalar("loss (smoothed)", 0.5, 45, walltime=wall + 46)  # a tag our keys do not allow: renamed
    train.add_scalar("grad_norm", math.nan, 45, walltime=wall + 46)  # not finite: skipped
    train.add_histogram("weights", np.arange(10.0), 45, walltime=wall + 46)  # not a scalar: skipped
    train.close()
    expected["train"] = {
        "loss": [[step, 2.0 / (1 + step)] for step in range(0, 50, 5)],
        "learning_rate": [[step, 1e-4] for step in range(0, 50, 5)],
        "loss _smoothed_": [[45, 0.5]],
    }
    evaluation = SummaryWriter(str(logdir / "eval"))
    for step in (10, 20, 30):
        evaluation.add_scalar("accuracy", 0.6 + step / 100, step, walltime=wall + step)
    evaluation.close()
    expected["eval"] = {"accuracy": [[step, 0.6 + step / 100] for step in (10, 20, 30)]}

    (logdir / "tf2").mkdir()
    tf2 = EventFileWriter(str(logdir / "tf2"))
    scalars = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
    for step in (1, 2, 3):
        tensor = TensorProto(dtype=1, tensor_shape=TensorShapeProto(), float_val=[step * 0.25])  # DT_FLOAT
        value = Summary.Value(tag="epoch_loss", tensor=tensor, metadata=scalars)
        tf2.add_event(Event(wall_time=wall + step, step=step, summary=Summary(value=[value])))
    tf2.close()
    expected["tf2"] = {"epoch_loss": [[step, step * 0.25] for step in (1, 2, 3)]}
    return {"runs": expected, "skipped_points": 1, "skipped_series": 1}


def finite(series):
    return [[step, value] for step, value in series if math.isfinite(value)]


def last_per_step(series):
    return sorted({step: value for step, value in series}.items())


def expected_mlflow() -> dict:
    return {
        name: {
            "experiment": experiment,
            "status": status,
            "params": params,
            "tags": tags,
            "metrics": {key: [list(point) for point in last_per_step(finite(series))] for key, series in metrics.items()},
        }
        for name, (experiment, status, params, tags, metrics) in RUNS.items()
    }


def main() -> None:
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 keeps the folder store for those who still have one
    shutil.rmtree(FIXTURES, ignore_errors=True)
    FIXTURES.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as scratch:
        database = Path(scratch) / "mlflow.db"
        sqlite_ids = write_mlflow(f"sqlite:///{database}", Path(scratch) / "artifacts")
        with sqlite3.connect(database) as con:
            con.execute("VACUUM")
        with database.open("rb") as source, gzip.open(FIXTURES / "mlflow.db.gz", "wb", compresslevel=9) as target:
            shutil.copyfileobj(source, target)
        folder_ids = write_mlflow((FIXTURES / "mlruns").as_uri(), Path(scratch) / "artifacts")
    tensorboard = write_tensorboard(FIXTURES / "tensorboard")
    expected = {
        "mlflow": {"runs": expected_mlflow(), "deleted": DELETED[0], "sqlite_ids": sqlite_ids, "folder_ids": folder_ids},
        "tensorboard": tensorboard,
    }
    (FIXTURES / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(f"wrote {FIXTURES}")


if __name__ == "__main__":
    main()
