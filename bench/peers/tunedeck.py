"""TuneDeck through its public API only: the tracking SDK, the bulk writer, and the store's queries.

Every function here is one side of a comparison; the clocks live in the callers. The store's
owner (today the store server, `core.remote`) is touched only by `owner_running`, `stop_owner`
and `start_owner`, so a new owner design is adapted here in one place.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.peers.workload import ACCURACY_THRESHOLD, EXPERIMENT, KEYS, PARAMS, folder_bytes

NAME = "TuneDeck"
FILTER = f"accuracy > {ACCURACY_THRESHOLD}"
STORE_FILE = "tunedeck.duckdb"
DATASET = "(logged from a script)"


def environment(folder: Path) -> dict[str, str]:
    """What a user's shell sets: the store's folder (and in team mode the database its `store-url` file names);
    the owner stays up between our processes."""
    named = Path(folder) / "store-url"
    team = {"TUNEDECK_STORE_URL": named.read_text().strip()} if named.exists() else {}
    no_cache = {"TUNEDECK_READ_CACHE_MB": "0"}  # repeated queries measure the store, not answers kept in memory
    return {"TUNEDECK_DATA_DIR": str(folder), "TUNEDECK_STORE_SERVER_IDLE_EXIT": "3600", **no_cache, **team}


def setup(folder: Path) -> int:
    """The experiment, created before the clock (this also brings up the store's owner)."""
    from core import open_store

    return open_store(folder).create_experiment({"name": EXPERIMENT, "dataset": DATASET})


def user_path(folder: Path, experiment: int, runs: list[list[dict]], report) -> list[int]:
    """Run by run through the SDK, as a training script: start the run, log each step, leave the block.

    The store is the one TUNEDECK_DATA_DIR names (`environment(folder)`), as in a user's shell.
    """
    from core import open_store

    run_ids = []
    for index, steps in enumerate(runs):
        run_ids.append(one_run(experiment, steps))
        report(index + 1)
    # Still in the clock: the owner applies the runs' ends in batches after answering them; a read waits for them.
    ended = open_store(folder).get_runs(run_ids[-1:])
    assert ended[0].status.value == "completed", ended[0].status
    return run_ids


def bulk(folder: Path, experiment: int, runs: list[dict], report) -> list[int]:
    """Whole series through `MetricWriter.log_series`; runs created, started and completed inside the clock."""
    from core import open_store
    from core.writer import MetricWriter

    store = open_store(folder)
    run_ids = []
    for _ in runs:
        run_ids.append(store.create_run(experiment, PARAMS))
        store.mark_running(run_ids[-1], worker="bench")
    with MetricWriter(store) as writer:
        for index, (run_id, series) in enumerate(zip(run_ids, runs, strict=True)):
            steps = range(len(series[KEYS[0]]))
            for key in KEYS:
                writer.log_series(run_id, key, steps, series[key])
            report(index + 1)
    for run_id in run_ids:
        store.complete_run(run_id)
    return run_ids


def one_run(experiment: int, steps: list[dict]) -> int:
    """One run's lifecycle: start it (by experiment name, as the SDK's docs do), log its steps, leave the block."""
    from core import tracking

    with tracking.start_run(EXPERIMENT, params=PARAMS) as run:
        for step, values in enumerate(steps):
            run.log(step, values)
    return run.id


def version() -> str:
    import duckdb

    return f"DuckDB {duckdb.__version__}"


def reader(folder: Path):
    from core import open_store

    return open_store(folder)


def ready(folder: Path, run_ids: list) -> float:
    """Nothing to do before TuneDeck's queries see the runs."""
    return 0.0


def list_latest(store, experiment: int) -> int:
    """One row per run, one column per metric's last value."""
    table = store.runs_table(experiment)
    assert table["loss"].null_count() == 0 and set(KEYS) <= set(table.columns)
    return table.height


def filter_order(store, experiment: int) -> list[int]:
    return store.runs_table(experiment, where=[FILTER], order_by="eval_loss")["id"].to_list()


def history(store, run_id: int) -> int:
    """One history call: every `loss` point of one run."""
    return store.get_metric_series([run_id], keys=["loss"], max_points=None).height


def history_one_call(store, run_ids: list[int]) -> int:
    """The same points as the per-run calls, in one call for all the runs (TuneDeck only)."""
    return store.get_metric_series(run_ids, keys=["loss"], max_points=None).height


def point_counts(store, experiment: int) -> list[int]:
    """Points stored per run (all keys), from the runs' metric summaries: checks an ingest kept everything."""
    return [sum(summary.count for summary in run.metrics.values()) for run in store.list_runs(experiment)]


def cold_code(folder: Path, experiment: int) -> str:
    """A fresh interpreter's work: import, open the store, one filtered and ordered list; in-process times out."""
    return (
        "import time; started = time.perf_counter()\n"
        "import json\n"
        "from core import open_store\n"
        "imported = time.perf_counter()\n"
        f"table = open_store({str(folder)!r}).runs_table({experiment}, where=[{FILTER!r}], order_by='eval_loss')\n"
        "finished = time.perf_counter()\n"
        "print(json.dumps({'import_ms': 1000 * (imported - started), 'work_ms': 1000 * (finished - imported), "
        "'rows': table.height}))\n"
    )


def owner_running(folder: Path) -> bool:
    from core import remote

    return remote.running((Path(folder) / STORE_FILE).resolve())


def stop_owner(folder: Path) -> None:
    """The owner closes the file (folding in its write-ahead log) and exits; no-op when none runs."""
    from core import remote

    if not remote.stop((Path(folder) / STORE_FILE).resolve()):
        raise RuntimeError(f"the store owner of {folder} did not stop within 15 s")


def start_owner(folder: Path, root: Path) -> None:
    """As a previous call by another process leaves it: started by that process, still alive after it exited."""
    if owner_running(folder):
        return
    code = f"from core import open_store; open_store({str(folder)!r}).list_experiments()"
    env = {**os.environ, **environment(folder)}
    with tempfile.TemporaryFile() as stderr:  # not a pipe: the owner may inherit it and outlive the call
        finished = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        stderr.seek(0)
        message = stderr.read().decode(errors="replace")[-2000:]
    if finished.returncode != 0 or not owner_running(folder):
        raise RuntimeError(f"no store owner is running for {folder} after a call from another process:\n{message}")


def done(folder: Path) -> None:
    stop_owner(folder)


def size(folder: Path) -> int:
    """The whole folder once the owner has closed the file (as at any idle exit)."""
    stop_owner(folder)
    return folder_bytes(folder)
