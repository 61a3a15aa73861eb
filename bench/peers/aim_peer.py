"""Aim through its Python SDK: `Run.track` to log, `Repo.query_runs` to list and filter, `Run.get_metric`.

Aim's query language filters on a metric's last value but cannot order, so `filter_order`
sorts the matching runs in Python, as a caller of the SDK must. Queries read Aim's run index,
which `aim up` fills in a background thread; `ready` does the same work synchronously.
"""

import time
from pathlib import Path

from bench.peers.workload import ACCURACY_THRESHOLD, EXPERIMENT, KEYS, PARAMS, folder_bytes

NAME = "Aim"
FILTER = f"run.experiment == '{EXPERIMENT}' and run.metrics['accuracy'].last > {ACCURACY_THRESHOLD}"


def environment(folder: Path) -> dict[str, str]:
    return {}


def version() -> str:
    from aim.__version__ import __version__

    return __version__


def setup(folder: Path) -> str:
    from aim import Repo

    Repo.from_path(str(folder), init=True)
    return EXPERIMENT


def user_path(folder: Path, experiment: str, runs: list[list[dict]], report) -> list[str]:
    """One `aim.Run` per run, its params, one `track` of the step's 4 metrics per step, `close`.

    System and terminal tracking are off: they add a background thread per run that the others do not have.
    """
    from aim import Run

    run_hashes = []
    for index, steps in enumerate(runs):
        run = Run(repo=str(folder), experiment=experiment, system_tracking_interval=None, capture_terminal_logs=False)
        run["hparams"] = PARAMS
        for step, values in enumerate(steps):
            run.track(values, step=step)
        run_hashes.append(run.hash)
        run.close()
        report(index + 1)
    return run_hashes


def reader(folder: Path):
    from aim import Repo

    return Repo.from_path(str(folder))


def ready(folder: Path, run_ids: list) -> float:
    """Seconds to index the runs so queries see them (Aim's UI server does this in the background)."""
    from aim.sdk.index_manager import RepoIndexManager

    start = time.perf_counter()
    manager = RepoIndexManager.get_index_manager(reader(folder))
    for run_hash in run_ids:
        manager.index(run_hash)
    return time.perf_counter() - start


def _latest(repo, query: str) -> list[tuple[str, dict[str, float]]]:
    """(hash, {key: last value}) for every run the query matches."""
    from aim.sdk.types import QueryReportMode

    found = []
    for item in repo.query_runs(query, report_mode=QueryReportMode.DISABLED).iter_runs():
        traces = item.run.collect_sequence_info("metric")["metric"]
        found.append((item.run.hash, {trace["name"]: trace["values"]["last"] for trace in traces}))
    return found


def list_latest(repo, experiment: str) -> int:
    found = _latest(repo, f"run.experiment == '{experiment}'")
    assert all(set(KEYS) <= set(metrics) for _, metrics in found)
    return len(found)


def filter_order(repo, experiment: str) -> list[str]:
    return [run_hash for run_hash, metrics in sorted(_latest(repo, FILTER), key=lambda item: item[1]["eval_loss"])]


def history(repo, run_hash: str) -> int:
    from aim.storage.context import Context

    return len(repo.get_run(run_hash).get_metric("loss", Context({})).values.values_list())


def cold_code(folder: Path, experiment: str) -> str:
    return (
        "import time; started = time.perf_counter()\n"
        "import json\n"
        "from aim import Repo\n"
        "from aim.sdk.types import QueryReportMode\n"
        "imported = time.perf_counter()\n"
        f"repo = Repo.from_path({str(folder)!r})\n"
        f"found = [(item.run.hash, {{t['name']: t['values']['last'] for t in item.run.collect_sequence_info('metric')['metric']}}) "
        f"for item in repo.query_runs({FILTER!r}, report_mode=QueryReportMode.DISABLED).iter_runs()]\n"
        "found.sort(key=lambda item: item[1]['eval_loss'])\n"
        "finished = time.perf_counter()\n"
        "print(json.dumps({'import_ms': 1000 * (imported - started), 'work_ms': 1000 * (finished - imported), "
        "'rows': len(found)}))\n"
    )


def done(folder: Path) -> None:
    """Aim keeps no process of its own here (no `aim up`)."""


def size(folder: Path) -> int:
    return folder_bytes(folder)
