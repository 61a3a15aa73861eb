"""Soak: worker jobs flood metrics while dashboard readers list, open and compare runs; nothing fails, nothing is lost.

The measured figures are printed; `python -m tests.reliability.load_report` runs this test and writes them
to the `## Load` section of RELIABILITY.md (a plain pytest run never writes into the work tree).
"""

import multiprocessing
import os
import re
import sys
import textwrap
import time
import uuid
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from core import open_store
from core.logs import read_log
from core.settings import get_settings
from core.status import RunStatus
from jobs import tasks
from tests.jobs.conftest import ROOT, SAMPLE, start_worker, stop_worker
from tests.reliability.flood import LOGGED, SCALES
from tests.reliability.load_report import REPORT_TO, LoadFigures, render, replace_section, write_section
from tests.reliability.readers import PAGES, read_in_a_loop

# The figures in RELIABILITY.md come from 4 workers and 4 readers, two rounds of 10 s floods (load_report); a plain
# test run proves the same with 2 and 2 and one round of 2 s, a small part of the CPU time.
REPORTING = bool(os.environ.get(REPORT_TO))
WORKERS = 4 if REPORTING else 2
READERS = 4 if REPORTING else 2
RUNS = 2 * WORKERS if REPORTING else WORKERS
FLOOD_SECONDS = 10.0 if REPORTING else 2.0
MAX_STEPS = 5_000_000  # a cap for very fast machines; FLOOD_SECONDS bounds each job
RUNS_TIMEOUT = 300.0  # the soak gives up (and fails) if the runs have not all finished by then (other tests run beside it)


@pytest.fixture
def flood_commands(tmp_path):
    path = tmp_path / "commands.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [commands.flood]
            command = ["{sys.executable}", "-m", "tests.reliability.flood", "--max-steps", "{{max_steps}}", "--seconds", "{FLOOD_SECONDS}"]
            working_dir = "{ROOT}"
            """
        )
    )
    return path


@pytest.fixture
def workers(flood_commands):
    """WORKERS worker processes running one job each; yields a function listing their logs."""
    data_dir = get_settings().data_dir
    earlier_logs = set(data_dir.glob("worker-test-*.log"))
    started = []
    try:
        for _ in range(WORKERS):
            started.append(start_worker("--workers", "1", TUNEDECK_COMMANDS_FILE=str(flood_commands)))
        yield lambda: sorted(set(data_dir.glob("worker-test-*.log")) - earlier_logs)
    finally:
        for worker in started:
            stop_worker(worker)


@contextmanager
def reading(run_ids: list[int]):
    """READERS processes visiting the pages until the stop event is set; yields (stop, results queue)."""
    context = multiprocessing.get_context("spawn")
    stop, results = context.Event(), context.Queue()
    processes = [
        context.Process(target=read_in_a_loop, args=(run_ids, stop, RUNS_TIMEOUT, results), daemon=True) for _ in range(READERS)
    ]
    try:
        for process in processes:
            process.start()
        yield stop, results
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join()


def runs_when_finished(store, run_ids: list[int], timeout: float):
    """The runs once all are terminal, or as they stand at the timeout; one store read per poll to add little load."""
    deadline = time.monotonic() + timeout
    while True:
        runs = store.get_runs(run_ids)
        if all(run.status.is_terminal for run in runs) or time.monotonic() >= deadline:
            return runs
        time.sleep(0.5)


def steps_logged(run_id: int) -> int:
    found = re.search(rf"{re.escape(LOGGED)} (\d+)", read_log(get_settings(), run_id, tail_lines=None))
    return int(found.group(1)) if found else 0


def stored_points(store, run_id: int, steps: int) -> tuple[int, list[str]]:
    """Points of the run that are in the store as logged (summary and series agree), and what is wrong."""
    run, series = store.get_run(run_id), store.get_run_metrics(run_id).series
    expected = pl.DataFrame({"step": range(1, steps + 1)}, schema={"step": pl.Int64})
    stored, problems = 0, []
    for key, scale in SCALES.items():
        points = series.filter(pl.col("key") == key).select(pl.col("step").cast(pl.Int64), "value")
        count = run.metrics[key].count if key in run.metrics else 0
        intact = points.join(expected, on="step", how="inner").filter(pl.col("value") == scale / pl.col("step")).height
        stored += intact
        if not count == points.height == intact == steps:
            problems.append(f"run {run_id} {key}: logged {steps}, summary {count}, series {points.height}, intact {intact}")
    return stored, problems


def writer_errors(runs, worker_logs) -> list[str]:
    """Runs that did not complete, and tracebacks or errors in the workers' and the runs' logs."""
    errors = [
        f"run {run.id} {run.status.value}: {run.error}"
        if run.status.is_terminal
        else f"run {run.id} still {run.status.value} after {RUNS_TIMEOUT:.0f} s"
        for run in runs
        if run.status is not RunStatus.COMPLETED
    ]
    logs = {path.name: path.read_text(encoding="utf-8", errors="replace") for path in worker_logs}
    logs |= {f"run-{run.id}.log": read_log(get_settings(), run.id, tail_lines=None) for run in runs}
    return errors + [
        f"{name}: {line.strip()}"
        for name, text in logs.items()
        for line in text.splitlines()
        if "Traceback" in line or " ERROR " in line
    ]


def test_flooding_writers_and_looping_readers_see_no_errors_and_lose_no_points(workers):
    store = open_store()
    experiment_id = store.create_experiment({"name": f"soak {uuid.uuid4().hex[:8]}", "dataset": SAMPLE})
    started = time.monotonic()
    run_ids = [
        tasks.start_run(store, experiment_id, {"trainer": "command", "command": "flood", "max_steps": MAX_STEPS})
        for _ in range(RUNS)
    ]
    with reading(run_ids) as (stop, results):
        runs = runs_when_finished(store, run_ids, RUNS_TIMEOUT)
        held = time.monotonic() - started
        stop.set()
        reports = [results.get(timeout=90) for _ in range(READERS)]

    logged = {run_id: steps_logged(run_id) for run_id in run_ids}
    counted = {run_id: stored_points(store, run_id, steps) for run_id, steps in logged.items()}
    figures = LoadFigures(
        workers=WORKERS,
        readers=READERS,
        runs=RUNS,
        runs_completed=sum(run.status is RunStatus.COMPLETED for run in runs),
        keys_per_step=len(SCALES),
        flood_seconds=FLOOD_SECONDS,
        held_seconds=held,
        points_logged=sum(logged.values()) * len(SCALES),
        points_stored=sum(stored for stored, _ in counted.values()),
        latencies={page: [seconds for latencies, _ in reports for seconds in latencies[page]] for page in PAGES},
        reader_errors=[error for _, errors in reports for error in errors],
        writer_errors=writer_errors(runs, workers()),
    )
    section = render(figures)
    if os.environ.get(REPORT_TO):
        write_section(Path(os.environ[REPORT_TO]), section)
    print("\n" + section)

    assert figures.reader_errors == [], "\n".join(figures.reader_errors[:5])
    assert figures.writer_errors == [], "\n".join(figures.writer_errors[:20])
    assert all(steps > 0 for steps in logged.values()), logged
    assert [problem for _, problems in counted.values() for problem in problems] == []
    assert figures.points_lost == 0
    assert all(figures.latencies[page] for page in PAGES), "every reader visited every page"


DOCUMENT = "# Reliability\n\n## Crashes\n\nkill -9 text\n\n## Load\n\nold figures\n\n## Upgrades\n\nmigration text\n"


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("", "# Reliability\n\n## Load\n\nnew\n"),
        (DOCUMENT, DOCUMENT.replace("old figures\n", "new\n")),
        ("# Reliability\n\n## Crashes\n\ntext\n\n## Load\n\nold\n", "# Reliability\n\n## Crashes\n\ntext\n\n## Load\n\nnew\n"),
        ("# Reliability\n\n## Crashes\n\ntext\n", "# Reliability\n\n## Crashes\n\ntext\n\n## Load\n\nnew\n"),
        ("## Loading times\n\nkept\n", "## Loading times\n\nkept\n\n## Load\n\nnew\n"),
    ],
    ids=["new file", "between sections", "last section", "no load section yet", "similar heading kept"],
)
def test_the_load_section_is_replaced_and_every_other_section_kept(before, after):
    assert replace_section(before, "## Load\n\nnew\n") == after


def test_the_load_section_reports_every_figure():
    figures = LoadFigures(
        workers=4,
        readers=4,
        runs=8,
        runs_completed=8,
        keys_per_step=4,
        flood_seconds=6.0,
        held_seconds=30.0,
        points_logged=400,
        points_stored=400,
        latencies={"experiments": [0.01, 0.02], "compare": [0.1]},
    )

    section = render(figures, today=datetime(2026, 1, 2))

    assert section.startswith("## Load\n") and "Last measured 2026-01-02" in section
    for figure in (
        "| Points logged | 400 (13 points/s",
        "| Runs completed | 8 of 8 |",
        "| Points lost | 0 |",
        "| Reads | 3 |",
        "| Errors | 0 surfaced to readers, 0 to writers |",
    ):
        assert figure in section
