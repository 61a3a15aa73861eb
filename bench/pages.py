"""Page benchmark: every dashboard page's full script run on the big store, through Streamlit's AppTest.

    python -m bench.pages                       # 10,000 experiments / 200,000 runs / 10,400,000 points
    python -m bench.pages --experiments 1000    # a quick run, a tenth of the size
    python -m bench.pages --profile             # also print where every page's script spends its time

Each sample is a fresh AppTest session opening one page by its link, as a first visit does.
AppTest runs the script in a thread and then parses what it sent, so its run() time is an
upper bound of the server-side script time; the script thread's own time is noted beside it.
AppTest's own look for custom components, which the server makes once at start, is made once per
process here too (`tests.apptest`): it was ~130 ms of every sample.
The pages' `open_store()` starts the store server on their first call (in the warm-ups), so
the timed samples go through it, as in production. Also timed: the chart data of 50 runs x
100,000 steps, downsampled, and its Altair chart, through a served store as well.
Every store server is stopped at the end.
"""

import argparse
import cProfile
import logging
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import chdir, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Self

import numpy as np
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.local_script_runner import LocalScriptRunner

from bench.queries import POINTS_PER_RUN, RUNS_PER_EXPERIMENT, QueryResult, asked_per_call
from bench.seed import RoundTrips, build_store, counting_round_trips, require_server, served, stop_server
from bench.timing import Timing, measure
from core.charts import ChartOptions, metric_spec, points_per_curve
from core.duckdb_store import DuckDBStore
from core.writer import MetricWriter
from tests.apptest import scan_components_once

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = str(ROOT / "data" / "sample" / "sentiment.csv")
EXPERIMENTS = 10_000
COMPARED_RUNS = 10
ADAPTERS = 3
TARGET_MS = 300
CHART_RUNS = 50
CHART_STEPS = 100_000
CHART_MAX_POINTS = 1000
CHART_TARGET_MS = 300
CHART_SETTLE_S = 15.0  # the store idle after the logging: its upkeep builds the runs' growing curve overviews (~7 s)
HOT_SPOTS = 12


class PageError(Exception):
    """A page raised, or drew the apology that friendly_errors shows for an unexpected error."""


@dataclass(frozen=True)
class Page:
    path: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def link(self) -> str:
        query = "&".join(f"{name}={value}" for name, value in self.params.items())
        return f"{self.path}?{query}" if query else self.path


@dataclass(frozen=True)
class HotSpot:
    """One function of a cProfile run: where it is, how often it ran, its time with and without callees."""

    where: str
    calls: int
    cumulative_ms: float
    own_ms: float


@dataclass(frozen=True)
class PageResult:
    page: Page
    run: Timing
    script: Timing
    asked: RoundTrips  # store server operations and round trips in one run of the page
    target_ms: float = TARGET_MS
    hot_spots: tuple[HotSpot, ...] = ()

    @property
    def passed(self) -> bool:
        return self.run.median_ms < self.target_ms

    def line(self) -> str:
        return (
            f"{self.page.link}: AppTest run median {self.run.median_ms:.0f} ms, p90 {self.run.p90_ms:.0f} ms; "
            f"script thread median {self.script.median_ms:.0f} ms; {self.asked.operations} store operations, "
            f"{self.asked.round_trips} round trips "
            f"({'pass' if self.passed else 'FAIL'} against < {self.target_ms:.0f} ms)"
        )


@dataclass(frozen=True)
class PageSuite:
    experiments: int
    runs: int
    seed_seconds: float
    adapters: int
    pages: list[PageResult]
    chart_points: int
    chart_seed_seconds: float
    charts: list[QueryResult]


# -- the app under AppTest -----------------------------------------------------------------------
@contextmanager
def app_environment(data_dir: Path) -> Iterator[None]:
    """The app on data_dir, run from the repository root (pages resolve sample paths from there), no worker,
    and its store served (TUNEDECK_STORE_SERVER=1 whatever the caller's environment says), as in production.

    AppTest leaves sys.modules["__main__"] set to the last script it ran; it is put back, or a process
    spawned afterwards (bench.jobs, bench.ingest) would run app.py as its main module.
    """
    if "jobs.config" in sys.modules:
        raise RuntimeError(
            "jobs.config was imported before bench.pages set TUNEDECK_DATA_DIR, so the Jobs page would read "
            "another queue; run the page benchmark first in its process"
        )
    names = ("TUNEDECK_DATA_DIR", "TUNEDECK_EMBEDDED_WORKER", "TUNEDECK_STORE_SERVER")
    saved = {name: os.environ.get(name) for name in names}
    main = sys.modules["__main__"]
    os.environ.update(TUNEDECK_DATA_DIR=str(data_dir), TUNEDECK_EMBEDDED_WORKER="0", TUNEDECK_STORE_SERVER="1")
    quiet = logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context")
    quiet.disabled = True  # "missing ScriptRunContext" each time an AppTest is built, harmless by its own words
    try:
        with chdir(ROOT):
            yield
    finally:
        sys.modules["__main__"] = main
        quiet.disabled = False
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class ScriptThread:
    """Times (and, given a profiler, profiles) the thread in which AppTest runs the script.

    It wraps LocalScriptRunner._run_script_thread, a private method: cProfile sees only the
    thread that enables it, and the page script runs in AppTest's own thread.
    """

    def __init__(self):
        self.last_ms = 0.0
        self.profiler: cProfile.Profile | None = None
        self._original = LocalScriptRunner._run_script_thread

    def __enter__(self) -> Self:
        watch, original = self, self._original

        def timed(runner: LocalScriptRunner) -> None:
            start = time.perf_counter()
            try:
                if watch.profiler is not None:
                    watch.profiler.runcall(original, runner)
                else:
                    original(runner)
            finally:
                watch.last_ms = (time.perf_counter() - start) * 1000

        LocalScriptRunner._run_script_thread = timed
        return self

    def __exit__(self, *exc) -> None:
        LocalScriptRunner._run_script_thread = self._original


def open_page(page: Page) -> AppTest:
    scan_components_once()
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    for name, value in page.params.items():
        app.query_params[name] = value
    app.switch_page(page.path)
    return app


def check(app: AppTest, page: Page) -> None:
    failures = [str(e.value) for e in app.exception]
    failures += [e.value for e in app.error if "Something went wrong" in e.value]
    if failures:
        raise PageError(f"{page.link} failed: {failures}")


def run_page(page: Page, thread: ScriptThread) -> tuple[float, float]:
    """One fresh session opening the page: (AppTest run() ms, script thread ms). Building the AppTest is off the clock."""
    app = open_page(page)
    start = time.perf_counter()
    app.run()
    elapsed = (time.perf_counter() - start) * 1000
    check(app, page)
    return elapsed, thread.last_ms


def time_page(page: Page, thread: ScriptThread, repeat: int, warmup: int) -> tuple[Timing, Timing]:
    """Warm-ups import the page's modules, start the store server (the first page's) and warm its cache,
    as an app that has served before."""
    for _ in range(warmup):
        run_page(page, thread)
    samples = [run_page(page, thread) for _ in range(repeat)]
    return Timing(tuple(run for run, _ in samples)), Timing(tuple(script for _, script in samples))


def asked_per_run(page: Page, thread: ScriptThread) -> RoundTrips:
    """One more, untimed run of the page, counting what its script asked of the store server."""
    with counting_round_trips() as counted:
        run_page(page, thread)
    return counted


# -- where a page's script spends its time ---------------------------------------------------------
def _ours(filename: str) -> bool:
    return filename.startswith(str(ROOT)) and not filename.startswith(str(ROOT / "bench"))


def _library(filename: str) -> bool:
    """Installed packages; the standard library (contextlib and the like) only wraps our own calls."""
    return "site-packages" in Path(filename).parts or filename == "~"


def _label(function: tuple[str, int, str]) -> str:
    filename, line, name = function
    if filename == "~":
        return name
    if name == "wrapped_func" and filename.endswith("metrics_util.py"):
        return "st.* calls (Streamlit's wrapper of every element and widget)"
    path = Path(filename)
    if _ours(filename):
        return f"{path.relative_to(ROOT)}:{line} {name}"
    packages = path.parts[path.parts.index("site-packages") + 1 :]
    return f"{'/'.join(packages)}:{line} {name}"


def hot_spots(stats: pstats.Stats, top: int = HOT_SPOTS) -> tuple[HotSpot, ...]:
    """The project's functions, and the library calls they make directly (counting only those calls), by time including callees."""
    picked = []
    for function, (_, calls, own, cumulative, callers) in stats.stats.items():
        if _ours(function[0]):
            if function[2] != "<module>":
                picked.append(HotSpot(_label(function), calls, cumulative * 1000, own * 1000))
            continue
        ours = [numbers for caller, numbers in callers.items() if _ours(caller[0])]
        if ours and _library(function[0]):
            calls, own, cumulative = (sum(numbers[index] for numbers in ours) for index in (1, 2, 3))
            picked.append(HotSpot(_label(function), calls, cumulative * 1000, own * 1000))
    return tuple(sorted(picked, key=lambda spot: spot.cumulative_ms, reverse=True)[:top])


def profile_page(page: Page, thread: ScriptThread, top: int = HOT_SPOTS) -> tuple[HotSpot, ...]:
    """One more run of the page under cProfile (which slows it, so read the shares, not the totals)."""
    thread.profiler = cProfile.Profile()
    try:
        run_page(page, thread)
        return hot_spots(pstats.Stats(thread.profiler), top)
    finally:
        thread.profiler = None


# -- the stores ------------------------------------------------------------------------------------
def register_adapters(store: DuckDBStore, data_dir: Path, count: int = ADAPTERS) -> list[int]:
    """Seeded runs are already completed, so adapters come from a new experiment's runs, driven through the API."""
    experiment_id = store.create_experiment({"name": "adapter benchmark", "dataset": SAMPLE})
    adapter_ids = []
    for _ in range(count):
        run_id = store.create_run(experiment_id, {"learning_rate": 0.01, "epochs": 1})
        folder = data_dir / "adapters" / f"run-{run_id}"
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text("{}")
        store.mark_running(run_id, worker="bench")
        adapter = store.complete_run(run_id, {"path": str(folder), "base_model": "tiny-base", "size_bytes": 1, "checksum": "x"})
        adapter_ids.append(adapter.id)
    return adapter_ids


def pages_to_time(store: DuckDBStore, experiment_id: int, adapter_id: int) -> list[Page]:
    run_ids = [run.id for run in store.list_runs(experiment_id)]
    return [
        Page("pages/experiments.py"),
        Page("pages/experiment.py", {"experiment": str(experiment_id)}),
        Page("pages/run.py", {"run": str(run_ids[0])}),
        Page("pages/compare.py", {"runs": ",".join(map(str, run_ids[:COMPARED_RUNS]))}),
        Page("pages/adapters.py"),
        Page("pages/adapters.py", {"adapter": str(adapter_id)}),
        Page("pages/jobs.py"),
    ]


def chart_store(folder: Path) -> tuple[DuckDBStore, dict[int, str], float]:
    """One experiment whose runs each log CHART_STEPS steps of loss; returns the store, run names and seconds taken.

    The store is served: its first call starts a store server, which the caller must stop.
    """
    start = time.perf_counter()
    store = served(folder / "charts.duckdb")
    experiment_id = store.create_experiment({"name": "long curves", "dataset": SAMPLE})
    run_ids = [store.create_run(experiment_id, {"learning_rate": 0.01, "epochs": 1}) for _ in range(CHART_RUNS)]
    steps = np.arange(1, CHART_STEPS + 1, dtype=np.int64)
    noise = np.random.default_rng(0)
    with MetricWriter(store) as writer:
        for run_id in run_ids:
            loss = 2.0 * np.exp(-steps / 20_000) + 0.1 + noise.normal(0, 0.02, CHART_STEPS) + run_id * 1e-3
            writer.log_series(run_id, "loss", steps, loss)
    names = {run.id: run.name for run in store.list_runs(experiment_id)}
    return store, names, time.perf_counter() - start


def time_charts(folder: Path, repeat: int, warmup: int) -> tuple[int, float, list[QueryResult]]:
    try:
        store, names, seconds = chart_store(folder)
        require_server(store.path, "chart data")
        time.sleep(CHART_SETTLE_S)  # as a page opened a moment after training logged: the overviews are there
        return _time_charts(store, names, seconds, repeat, warmup)
    finally:
        stop_server(folder / "charts.duckdb")


def _time_charts(
    store: DuckDBStore, names: dict[int, str], seconds: float, repeat: int, warmup: int
) -> tuple[int, float, list[QueryResult]]:
    run_ids = list(names)

    def series():
        return store.get_metric_series(run_ids, ["loss"], max_points=CHART_MAX_POINTS)

    def chart_spec():
        return metric_spec(downsampled, "loss", run_names=names, options=options)

    downsampled = series()
    options = ChartOptions(buckets=points_per_curve(CHART_RUNS, 1))
    data = f"{CHART_RUNS} runs x {CHART_STEPS:,} steps of loss, max_points={CHART_MAX_POINTS:,}"
    timing = measure(series, repeat, warmup)
    results = [QueryResult(f"get_metric_series, {data}", timing, asked_per_call(series), CHART_TARGET_MS)]
    name = f"metric_spec of those {downsampled.height:,} points, bucketed to {options.buckets} per curve (what st.vega_lite_chart gets)"
    results.append(QueryResult(name, measure(chart_spec, repeat, warmup), RoundTrips(), None))
    return CHART_RUNS * CHART_STEPS, seconds, results


# -- the suite -------------------------------------------------------------------------------------
def time_pages(pages: list[Page], repeat: int, warmup: int, profile: bool) -> list[PageResult]:
    results = []
    with ScriptThread() as thread:
        for page in pages:
            result = PageResult(page, *time_page(page, thread, repeat, warmup), asked_per_run(page, thread))
            if profile or not result.passed:
                result = replace(result, hot_spots=profile_page(page, thread))
            results.append(result)
            print(result.line(), flush=True)
    return results


def run(folder: Path, experiments: int = EXPERIMENTS, repeat: int = 10, warmup: int = 2, profile: bool = False) -> PageSuite:
    """folder gets the app's data directory (the store must be <data_dir>/tunedeck.duckdb) and the chart store."""
    data_dir, charts_dir = folder / "data", folder / "charts"
    charts_dir.mkdir(parents=True)
    start = time.perf_counter()
    store = build_store(data_dir / "tunedeck.duckdb", experiments, RUNS_PER_EXPERIMENT, POINTS_PER_RUN)
    seed_seconds = time.perf_counter() - start
    adapter_ids = register_adapters(store, data_dir)
    to_time = pages_to_time(store, experiments // 2, adapter_ids[0])
    try:
        with app_environment(data_dir):
            pages = time_pages(to_time, repeat, warmup, profile)
        require_server(store.path, "bench.pages")  # the pages' open_store() started it, and no call fell back to the file
    finally:
        stop_server(store.path)
    chart_points, chart_seconds, charts = time_charts(charts_dir, repeat, warmup)
    for chart in charts:
        print(chart.line(), flush=True)
    total_runs = experiments * RUNS_PER_EXPERIMENT
    return PageSuite(experiments, total_runs, seed_seconds, len(adapter_ids), pages, chart_points, chart_seconds, charts)


def print_hot_spots(results: list[PageResult]) -> None:
    for result in results:
        if result.hot_spots:
            print(f"\n{result.page.link} under cProfile (ms including callees / own ms / calls):")
            for spot in result.hot_spots:
                print(f"  {spot.cumulative_ms:8.1f} {spot.own_ms:8.1f} {spot.calls:6d}  {spot.where}")


def arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--page-repeat", type=int, default=10, help="timed runs per page, after 2 warm-ups")
    parser.add_argument("--profile", action="store_true", help="profile every page, not only those over the target")
    return parser


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=EXPERIMENTS, help="experiments to seed, 20 runs each")
    options = arguments(parser).parse_args()
    with tempfile.TemporaryDirectory(prefix="tunedeck-pages-") as folder:
        suite = run(Path(folder), options.experiments, options.page_repeat, profile=options.profile)
    print_hot_spots(suite.pages)
    print(f"store: {suite.experiments:,} experiments, {suite.runs:,} runs, seeded in {suite.seed_seconds:.1f} s")


if __name__ == "__main__":
    main()
