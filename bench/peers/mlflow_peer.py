"""MLflow on its SQLite tracking store, driven as its docs show: `mlflow.start_run` / `log_metrics` to log,
`MlflowClient.search_runs` to list and filter, `get_metric_history` for a run's history."""

import logging
from pathlib import Path

from bench.peers.workload import ACCURACY_THRESHOLD, EXPERIMENT, KEYS, PARAMS, folder_bytes

NAME = "MLflow"
FILTER = f"metrics.accuracy > {ACCURACY_THRESHOLD}"
ORDER = ["metrics.eval_loss ASC"]
MAX_RESULTS = 50_000  # search_runs' ceiling: every run comes back in one page


def uri(folder: Path) -> str:
    """The SQLite file in the folder, or the database its `tracking-uri` file names (bench.peers.on_postgres)."""
    named = Path(folder) / "tracking-uri"
    return named.read_text().strip() if named.exists() else f"sqlite:///{Path(folder).resolve() / 'mlflow.db'}"


def environment(folder: Path) -> dict[str, str]:
    return {"MLFLOW_TRACKING_URI": uri(folder)}


def version() -> str:
    import mlflow

    return mlflow.__version__


def setup(folder: Path) -> str:
    """The database (MLflow creates its tables on first use) and the experiment, before the clock."""
    import mlflow

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(uri(folder))
    experiment = mlflow.create_experiment(EXPERIMENT, artifact_location=(Path(folder) / "artifacts").resolve().as_uri())
    mlflow.set_experiment(experiment_id=experiment)
    return experiment


def user_path(folder: Path, experiment: str, runs: list[list[dict]], report) -> list[str]:
    """Run by run, as a training script: start the run, log its params, log each step's metrics, end it."""
    run_ids = []
    for index, steps in enumerate(runs):
        run_ids.append(one_run(experiment, steps))
        report(index + 1)
    return run_ids


def one_run(experiment: str, steps: list[dict]) -> str:
    import mlflow

    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_params(PARAMS)
        for step, values in enumerate(steps):
            mlflow.log_metrics(values, step=step)
    return run.info.run_id


def bulk(folder: Path, experiment: str, runs: list[dict], report) -> list[str]:
    """Not the user's path: MLflow's own bulk call, `log_batch` (at most 1,000 metrics a call), to build a store of
    thousands of runs in minutes where the user's path takes hours (bench.peers.queries_at_size)."""
    import time

    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client, now = MlflowClient(tracking_uri=uri(folder)), int(time.time() * 1000)
    params = [Param(name, str(value)) for name, value in PARAMS.items()]
    run_ids = []
    for index, series in enumerate(runs):
        run_id = client.create_run(experiment).info.run_id
        metrics = [Metric(key, float(value), now, step) for key in KEYS for step, value in enumerate(series[key])]
        client.log_batch(run_id, params=params)
        for start in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[start : start + 1000])
        client.set_terminated(run_id)
        run_ids.append(run_id)
        report(index + 1)
    return run_ids


def reader(folder: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri(folder))


def ready(folder: Path, run_ids: list) -> float:
    """Nothing to do before MLflow's queries see the runs."""
    return 0.0


def list_latest(client, experiment: str) -> int:
    runs = client.search_runs([experiment], max_results=MAX_RESULTS)
    assert all(set(KEYS) <= set(run.data.metrics) for run in runs)
    return len(runs)


def filter_order(client, experiment: str) -> list[str]:
    runs = client.search_runs([experiment], filter_string=FILTER, order_by=ORDER, max_results=MAX_RESULTS)
    return [run.info.run_id for run in runs]


def history(client, run_id: str) -> int:
    return len(client.get_metric_history(run_id, "loss"))


def cold_code(folder: Path, experiment: str) -> str:
    return (
        "import time; started = time.perf_counter()\n"
        "import json\n"
        "from mlflow.tracking import MlflowClient\n"
        "imported = time.perf_counter()\n"
        f"runs = MlflowClient(tracking_uri={uri(folder)!r}).search_runs([{experiment!r}], filter_string={FILTER!r}, "
        f"order_by={ORDER!r}, max_results={MAX_RESULTS})\n"
        "finished = time.perf_counter()\n"
        "print(json.dumps({'import_ms': 1000 * (imported - started), 'work_ms': 1000 * (finished - imported), "
        "'rows': len(runs)}))\n"
    )


def done(folder: Path) -> None:
    """MLflow keeps no process of its own."""


def size(folder: Path) -> int:
    return folder_bytes(folder)
