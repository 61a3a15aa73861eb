"""Aim through its Python SDK: `Run.track` to log, `Repo.query_runs` to list and filter.

Aim's query language filters on a metric's last value but cannot order, so `filter_order`
sorts the matching runs in Python, as a caller of the SDK must. Queries read Aim's run index,
which `aim up` fills in a background thread; `index` does the same work synchronously.
"""

import time
from pathlib import Path

from bench.peers.workload import ACCURACY_THRESHOLD, KEYS, Ingested, curves, folder_bytes

EXPERIMENT = "peers"


def _repo(folder: Path):
    from aim import Repo

    return Repo.from_path(str(folder), init=True)


def version() -> str:
    from aim.__version__ import __version__

    return __version__


def ingest(folder: Path, runs: int, steps: int) -> Ingested:
    """One aim.Run per run, tracked step by step as a training loop does; system tracking is off."""
    from aim import Run

    _repo(folder)
    series = [curves(index, steps) for index in range(runs)]
    run_ids, points = [], 0
    start = time.perf_counter()
    for values in series:
        run = Run(repo=str(folder), experiment=EXPERIMENT, system_tracking_interval=None, capture_terminal_logs=False)
        columns = {key: values[key].tolist() for key in KEYS}
        for step in range(steps):
            for key in KEYS:
                run.track(columns[key][step], name=key, step=step)
        points += steps * len(KEYS)
        run_ids.append(run.hash)
        run.close()
    return Ingested(time.perf_counter() - start, points, EXPERIMENT, run_ids)


def index(folder: Path, ingested: Ingested) -> float:
    """Seconds to index the runs so queries see them (Aim's UI server does this in the background)."""
    from aim.sdk.index_manager import RepoIndexManager

    start = time.perf_counter()
    manager = RepoIndexManager.get_index_manager(_repo(folder))
    for run_hash in ingested.run_ids:
        manager.index(run_hash)
    return time.perf_counter() - start


def _latest(folder: Path, query: str) -> list[tuple[str, dict[str, float]]]:
    """(hash, {key: last value}) for every run the query matches."""
    from aim.sdk.types import QueryReportMode

    found = []
    for item in _repo(folder).query_runs(query, report_mode=QueryReportMode.DISABLED).iter_runs():
        traces = item.run.collect_sequence_info("metric")["metric"]
        found.append((item.run.hash, {trace["name"]: trace["values"]["last"] for trace in traces}))
    return found


def list_latest(folder: Path, ingested: Ingested) -> int:
    found = _latest(folder, f"run.experiment == '{ingested.experiment}'")
    assert all("loss" in metrics for _, metrics in found)
    return len(found)


def filter_order(folder: Path, ingested: Ingested) -> list[str]:
    query = f"run.experiment == '{ingested.experiment}' and run.metrics['accuracy'].last > {ACCURACY_THRESHOLD}"
    return [run_hash for run_hash, metrics in sorted(_latest(folder, query), key=lambda item: item[1]["eval_loss"])]


def history(folder: Path, ingested: Ingested, run_ids: list) -> int:
    from aim.storage.context import Context

    repo = _repo(folder)
    return sum(len(repo.get_run(run_hash).get_metric("loss", Context({})).values.values_list()) for run_hash in run_ids)


def size_on_disk(folder: Path) -> int:
    return folder_bytes(folder)
