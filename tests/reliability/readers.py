"""Dashboard readers for the soak test: the store reads each page makes, timed, in a loop."""

import time
import traceback

from core import open_store
from core.store import TrackingStore

COMPARED = 4


def list_experiments(store: TrackingStore, run_ids: list[int], turn: int) -> None:
    store.list_experiments(page_size=20)


def open_run(store: TrackingStore, run_ids: list[int], turn: int) -> None:
    """What pages/run.py reads."""
    run_id = run_ids[turn % len(run_ids)]
    with store.reading():
        run = store.get_run(run_id)
        store.get_experiment(run.experiment_id)
        store.get_metric_series([run_id], None, max_points=1000)


def compare_runs(store: TrackingStore, run_ids: list[int], turn: int) -> None:
    """What pages/compare.py reads, for COMPARED runs in turn."""
    chosen = [run_ids[(turn + offset) % len(run_ids)] for offset in range(COMPARED)]
    with store.reading():
        comparison = store.compare_runs(chosen)
        store.get_metric_series(chosen, [row.key for row in comparison.metrics], max_points=1000)


PAGES = {"experiments": list_experiments, "run detail": open_run, "compare": compare_runs}


def read_in_a_loop(run_ids: list[int], stop, max_seconds: float, results) -> None:
    """Visit the pages in turn, back to back, until `stop` is set; put ({page: [seconds]}, [error tracebacks]) on results."""
    latencies: dict[str, list[float]] = {page: [] for page in PAGES}
    errors: list[str] = []
    try:
        store = open_store()
        deadline = time.monotonic() + max_seconds
        turn = 0
        while not stop.is_set() and time.monotonic() < deadline:
            page = list(PAGES)[turn % len(PAGES)]
            started = time.perf_counter()
            try:
                PAGES[page](store, run_ids, turn)
            except Exception:
                errors.append(f"{page}: {traceback.format_exc()}")
            else:
                latencies[page].append(time.perf_counter() - started)
            turn += 1
    except Exception:
        errors.append(traceback.format_exc())
    results.put((latencies, errors))
