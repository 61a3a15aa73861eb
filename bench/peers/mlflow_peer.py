"""MLflow with its SQLite tracking store, driven through `MlflowClient` as its docs show."""

import logging
import time
from pathlib import Path

from bench.peers.workload import ACCURACY_THRESHOLD, KEYS, Ingested, curves, folder_bytes

BATCH = 1000  # MLflow's own limit for metrics in one log_batch call


def _client(folder: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{Path(folder) / 'mlflow.db'}")


def version() -> str:
    import mlflow

    return mlflow.__version__


def ingest(folder: Path, runs: int, steps: int) -> Ingested:
    """Runs are created before the clock starts; every point goes through log_batch, 1,000 at a time."""
    from mlflow.entities import Metric

    logging.getLogger("alembic").setLevel(logging.WARNING)
    client = _client(folder)
    experiment_id = client.create_experiment("peers", artifact_location=(Path(folder) / "artifacts").as_uri())
    run_ids = [client.create_run(experiment_id).info.run_id for _ in range(runs)]
    series = [curves(index, steps) for index in range(runs)]
    stamp = int(time.time() * 1000)
    points = 0
    start = time.perf_counter()
    for run_id, values in zip(run_ids, series, strict=True):
        metrics = [Metric(key, float(values[key][step]), stamp, step) for key in KEYS for step in range(steps)]
        for offset in range(0, len(metrics), BATCH):
            client.log_batch(run_id, metrics=metrics[offset : offset + BATCH])
        points += len(metrics)
    return Ingested(time.perf_counter() - start, points, experiment_id, run_ids)


def list_latest(folder: Path, ingested: Ingested) -> int:
    runs = _client(folder).search_runs([ingested.experiment], max_results=len(ingested.run_ids))
    assert all("loss" in run.data.metrics for run in runs)
    return len(runs)


def filter_order(folder: Path, ingested: Ingested) -> list[str]:
    runs = _client(folder).search_runs(
        [ingested.experiment],
        filter_string=f"metrics.accuracy > {ACCURACY_THRESHOLD}",
        order_by=["metrics.eval_loss ASC"],
        max_results=len(ingested.run_ids),
    )
    return [run.info.run_id for run in runs]


def history(folder: Path, ingested: Ingested, run_ids: list) -> int:
    client = _client(folder)
    return sum(len(client.get_metric_history(run_id, "loss")) for run_id in run_ids)


def size_on_disk(folder: Path) -> int:
    return folder_bytes(folder)
