"""BENCHMARKS.md from measured results: the machine, the figures against the targets, and what bounds them."""

import os
import platform
import re
import signal
from datetime import datetime
from pathlib import Path

import duckdb
import numpy
import polars

from bench.ingest import IngestResult
from bench.jobs import SAMPLE_CONFIG, SHORT_CONFIG, JobsSuite, SampleRun, Throughput
from bench.pages import CHART_MAX_POINTS, CHART_RUNS, CHART_SETTLE_S, CHART_STEPS, PageResult, PageSuite
from bench.queries import POINTS_PER_RUN, QueryResult, QuerySuite
from bench.seed import SERVER_IDLE_EXIT
from core.settings import get_settings

PEERS_HEADING = "## Peers"  # written by `python -m bench.peers`; render() output leaves it to keep_other_sections()


SLOW_PAGES = "## Where the slow pages spend their time"

def _proc_field(path: str, name: str) -> str:
    for line in Path(path).read_text().splitlines():
        if line.startswith(name):
            return line.split(":", 1)[1].strip()
    return "unknown"


def machine() -> dict[str, str]:
    memory_kib = int(_proc_field("/proc/meminfo", "MemTotal").split()[0])
    return {
        "CPUs (nproc)": str(len(os.sched_getaffinity(0))),
        "CPU model": _proc_field("/proc/cpuinfo", "model name"),
        "RAM": f"{memory_kib / 2**20:.1f} GiB",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "DuckDB": duckdb.__version__,
        "Polars": polars.__version__,
        "NumPy": numpy.__version__,
    }


def _verdict(passed: bool | None) -> str:
    return "—" if passed is None else ("pass" if passed else "**FAIL**")


def _ingest_row(result: IngestResult) -> str:
    name = f"Ingest {result.points:,} points, `{result.label}`, flush_points={result.flush_points:,}"
    measured = f"{result.points_per_second:,.0f} points/s ({result.seconds:.2f} s, {len(result.errors)} errors)"
    target = f"≥ {result.target:,.0f} points/s" if result.target else "—"
    passed = None if result.target is None else result.points_per_second >= result.target and not result.errors
    return f"| {name} | {measured} | {target} | {_verdict(passed)} |"


def _query_row(result: QueryResult) -> str:
    measured = f"median {result.timing.median_ms:.1f} ms (p90 {result.timing.p90_ms:.1f} ms)"
    target = f"< {result.target_ms:.0f} ms median" if result.target_ms else "—"
    passed = None if result.target_ms is None else result.timing.median_ms < result.target_ms
    return f"| `{result.name}` | {measured} | {target} | {_verdict(passed)} |"


def _page_row(result: PageResult) -> str:
    measured = f"median {result.run.median_ms:.0f} ms (p90 {result.run.p90_ms:.0f} ms)"
    return f"| Page `{result.page.link}` (AppTest `run()`) | {measured} | < {result.target_ms:.0f} ms median | {_verdict(result.passed)} |"


def _sample_row(sample: SampleRun) -> str:
    measured = (
        f"{sample.status} {sample.wall_seconds:.2f} s after `start_run` (ran {sample.run_seconds:.2f} s), "
        f"eval_accuracy {_accuracy(sample)}"
    )
    return f"| Sample run, `{_config(SAMPLE_CONFIG)}`, 1 consumer | {measured} | — | — |"


def _throughput_row(result: Throughput) -> str:
    measured = f"{result.per_minute:.1f} jobs/min ({result.completed} of {result.runs} completed in {result.seconds:.1f} s)"
    return f"| Short runs `{_config(SHORT_CONFIG)}`, {_consumers(result.consumers)} | {measured} | — | — |"


def _accuracy(sample: SampleRun) -> str:
    return "—" if sample.eval_accuracy is None else f"{sample.eval_accuracy:.3f}"


def _config(config: dict) -> str:
    return ", ".join(f"{key} {value}" for key, value in config.items())


def _consumers(count: int) -> str:
    return f"{count} consumer" + ("s" if count != 1 else "")


def _ingest_details(results: list[IngestResult]) -> list[str]:
    lines = [
        (
            "| Run | Processes | Points | Seconds | Points/s | flush_points | Flushes | Median ms per flush "
            "| Store requests per flush | Seconds in flushes | Store on disk | Verified |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        verified = "every point stored" if not r.errors else "; ".join(r.errors[:3])
        lines.append(
            f"| `{r.label}` | {r.processes} | {r.points:,} | {r.seconds:.2f} | {r.points_per_second:,.0f} | {r.flush_points:,} "
            f"| {len(r.flush_ms)} | {r.flush_median_ms:.0f} | {r.requests_per_flush:.0f} | {sum(r.flush_ms) / 1000:.2f} "
            f"| {r.store_bytes / 2**20:.0f} MiB "
            f"| {verified} |"
        )
    return lines


def _flush_cost(columnar: list[IngestResult]) -> str:
    """Fit median flush time = fixed + per point x flush_points through the two columnar runs."""
    small, large = sorted(columnar, key=lambda r: r.flush_points)[:: len(columnar) - 1]
    per_point = (large.flush_median_ms - small.flush_median_ms) / (large.flush_points - small.flush_points)
    fixed = small.flush_median_ms - per_point * small.flush_points
    return (
        f"Through those two points a flush costs about {fixed:.0f} ms fixed plus {per_point * 1000:.2f} µs per point "
        f"(the fixed part is what a flush costs whatever its size: its {small.requests_per_flush:.0f} request "
        "to the store server and the statements' and the commit's own overhead)."
    )


def _asked(result: QueryResult) -> str:
    """Store requests and Flight calls per call as table cells."""
    return f"{result.asked.operations} | {result.asked.round_trips}"


def _query_details(suite: QuerySuite) -> list[str]:
    lines = [
        "| Operation | Median ms | p90 ms | Store requests per call | Flight calls per call |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in suite.results:
        lines.append(f"| `{r.name}` | {r.timing.median_ms:.1f} | {r.timing.p90_ms:.1f} | {_asked(r)} |")
    return lines


def _page_details(pages: PageSuite) -> list[str]:
    lines = [
        "| Page | `run()` median ms | `run()` p90 ms | Script thread median ms | Store requests | Flight calls | < 300 ms |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in pages.pages:
        lines.append(
            f"| `{r.page.link}` | {r.run.median_ms:.0f} | {r.run.p90_ms:.0f} | {r.script.median_ms:.0f} "
            f"| {r.asked.operations} | {r.asked.round_trips} | {_verdict(r.passed)} |"
        )
    return lines


def _chart_details(pages: PageSuite) -> list[str]:
    lines = [
        "| Operation | Median ms | p90 ms | Store requests per call | Flight calls per call | Target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in pages.charts:
        target = f"< {r.target_ms:.0f} ms median: {_verdict(r.timing.median_ms < r.target_ms)}" if r.target_ms else "—"
        lines.append(f"| `{r.name}` | {r.timing.median_ms:.1f} | {r.timing.p90_ms:.1f} | {_asked(r)} | {target} |")
    return lines


def _hot_spots(pages: PageSuite) -> list[str]:
    """Where each page over its target spends its script time, from one run under cProfile."""
    lines = []
    for r in pages.pages:
        if not r.hot_spots:
            continue
        lines += [
            "",
            (
                f"`{r.page.link}`: `run()` median {r.run.median_ms:.0f} ms, of which the script thread "
                f"{r.script.median_ms:.0f} ms. One run of the script under cProfile (which slows it: read the shares):"
            ),
            "",
            "| Function | Calls | ms including callees | Own ms |",
            "|---|---:|---:|---:|",
        ]
        lines += [f"| `{s.where}` | {s.calls} | {s.cumulative_ms:.1f} | {s.own_ms:.1f} |" for s in r.hot_spots]
    if not lines:
        return []
    intro = (
        "Each page that missed its target (every page, given `--profile`) ran once more under cProfile. Listed: the project's functions and the library calls they make directly, by time including "
        "what they call. DuckDB's work happens in the store server, another process that cProfile does not see: here "
        "it shows as the wait for the server's answers, as own time of `core/remote.py` `send` (under `_action`, "
        "`_table` or `_put`: one per store request) below the store call that asked."
    )
    return [SLOW_PAGES, "", intro, *lines]


def _jobs_details(jobs: JobsSuite) -> list[str]:
    sample = jobs.sample
    lines = [
        "| Run | Status | `start_run` to completed, s | Waiting in the queue, s | Run (started to ended), s | Steps | Final eval_accuracy |",
        "|---|---|---:|---:|---:|---:|---:|",
        (
            f"| `{_config(SAMPLE_CONFIG)}` | {sample.status} | {sample.wall_seconds:.2f} | {sample.queue_seconds:.2f} "
            f"| {sample.run_seconds:.2f} | {sample.steps} | {_accuracy(sample)} |"
        ),
        "",
        "| Consumers | Short runs | Completed | Seconds, first enqueue to last end | Jobs per minute | Median run, s | Problems |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in jobs.throughput:
        problems = "; ".join(r.errors[:3]) or "none"
        lines.append(
            f"| {r.consumers} | {r.runs} | {r.completed} | {r.seconds:.1f} | {r.per_minute:.1f} | {r.median_run_seconds:.2f} "
            f"| {problems} |"
        )
    return lines


def _page_notes(pages: PageSuite) -> list[str]:
    overhead = sorted(r.run.median_ms - r.script.median_ms for r in pages.pages)
    light = min(pages.pages, key=lambda r: r.script.median_ms)
    heavy = max(pages.pages, key=lambda r: r.script.median_ms)
    missed = [f"`{r.page.link}`" for r in pages.pages if not r.passed]
    verdict = (
        f"Over the target: {', '.join(missed)}; see where their time goes above."
        if missed
        else "Every page is under the target even with AppTest's share counted."
    )
    series, spec = pages.charts
    pages_note = (
        f"- **Pages** are timed as AppTest's `run()`, which is the script thread plus AppTest's own work around it "
        f"(a mock runtime per run, then parsing the messages into elements): {overhead[0]:.0f} to {overhead[-1]:.0f} ms "
        "per page here, so a server spends about that much less on each. The script thread itself goes from "
        f"{light.script.median_ms:.0f} ms (`{light.page.link}`) to {heavy.script.median_ms:.0f} ms "
        f"(`{heavy.page.link}`): `app.py`'s routing, then its store reads ({_span(r.asked.operations for r in pages.pages)} "
        "requests to the store server per page, each one store operation answered in its own snapshot), building the "
        f"tables' column configs and the charts' Vega-Lite specs. {verdict}"
    )
    chart_note = (
        f"- **Chart data** for {pages.chart_points:,} points: `get_metric_series` is one request to the store server, "
        f"which reads the growing curve overviews of the {CHART_RUNS} runs (they never end, so their curves are bucketed "
        "by powers of two in steps, `core/overviews.py`) and the points logged after them, keeps the lowest and highest "
        "value per bucket and sends the buckets back as an Arrow table. Until the store's upkeep has built those "
        "overviews (passes of ~500,000 points while it idles, about 7 s for these 5,000,000), a read scans every point, "
        "as all reads did before them (README, \"Running runs' curves are kept downsampled as they grow\"); "
        f"{series.timing.median_ms:.0f} ms median against {series.target_ms:.0f} ms. Building the chart's spec from "
        f"them takes {spec.timing.median_ms:.0f} ms: the builders write the Vega-Lite dict themselves, with the points "
        "bucketed to what a full-width panel can show and kept as a named dataset, which Streamlit sends as Arrow."
    )
    return [pages_note, chart_note]


def _jobs_notes(jobs: JobsSuite) -> list[str]:
    by_consumers = {r.consumers: r for r in jobs.throughput}
    notes = [
        (
            f"- **A job** starts a new Python process that imports the trainer and the store ({jobs.import_seconds:.2f} s "
            "for the imports alone on this machine), then loads the dataset and base model, trains, and writes metrics "
            "and the adapter to the store; the worker also heartbeats into the store. The wait in the queue is Huey's "
            "polling: an idle consumer checks again after 0.1 s, backing off by 1.15x up to 1 s (`jobs.consumer.MAX_POLL_DELAY`; Huey's default is 10 s)."
        )
    ]
    if 1 in by_consumers and 2 in by_consumers:
        one, two = by_consumers[1], by_consumers[2]
        notes.append(
            f"- **Two consumers** get through {two.per_minute / one.per_minute:.2f}x the jobs of one: each short run's "
            f"median time rose from {one.median_run_seconds:.2f} s to {two.median_run_seconds:.2f} s, as two training "
            f"processes share {len(os.sched_getaffinity(0))} CPUs (with the workers, the polling and anything else "
            "running) and their writes queue for the store server's one committer thread."
        )
    unclean = [ended for ended in jobs.worker_exits if ended.code != 0]
    if unclean:
        last_lines = "; ".join(sorted({f"`{ended.last_line}`" for ended in unclean}))
        notes.append(
            f"- **Worker exit**: stopped with SIGTERM (as the job tests stop them) after every run had finished, "
            f"{len(unclean)} of {len(jobs.worker_exits)} workers exited uncleanly ("
            f"{', '.join(_exit_code(code) for code in sorted({ended.code for ended in unclean}))}; last output {last_lines})."
        )
    return notes


def _exit_code(code: int) -> str:
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


def _notes(ingest: list[IngestResult], suite: QuerySuite) -> list[str]:
    notes = []
    columnar = [r for r in ingest if r.label == "log_series"]
    if columnar:
        spread = ", ".join(f"{r.flush_median_ms:.0f} ms for {r.flush_points:,} points" for r in columnar)
        share = ", ".join(f"{100 * sum(r.flush_ms) / 1000 / r.seconds:.0f}%" for r in columnar)
        fittable = len({r.flush_points for r in columnar}) > 1 and all(len(r.flush_ms) >= 5 for r in columnar)
        fit = _flush_cost(columnar) if fittable else ""
        requests = ", ".join(dict.fromkeys(f"{r.requests_per_flush:.0f}" for r in columnar))
        notes.append(
            "- **Columnar ingest**: each flush is one `store.log_metrics` call, one Arrow Flight `do_put` request to the "
            f"store server ({requests} per flush, counted): the points stream over the Unix socket as Arrow record "
            "batches, the server reads the whole batch, then its committer thread inserts the points, merges the run "
            "summaries and commits (writes that queue up meanwhile share the commit), and only then answers. DuckDB "
            f"checkpoints the WAL into the file when it outgrows `checkpoint_threshold` ({_checkpoint_threshold()}) and "
            f"when the server closes. The flushes take {share} of the run time; the rest is the writer's own work in this "
            "process: checking each `log_series` call, journaling it (one write of its arrays to a segment in "
            f"`<data_dir>/journal`, {_journal_fsync()}) and building the batches. Median flush: "
            f"{spread}. {fit + ' ' if fit else ''}Larger `flush_points` amortise the fixed part; "
            "`python -m bench.profile_ingest --flush-points 100000` shows the client's side of the split by function."
        )
    for r in ingest:
        if r.label.startswith("log ("):
            python_us = (r.seconds - sum(r.flush_ms) / 1000) * 1e6 / r.points
            notes.append(
                f"- **Per-step `log()`** spends {python_us:.1f} µs per point in Python outside the flush: checking each "
                "run ID, step, key and value, journaling the call (one write per `log()`) and appending to lists in "
                "`MetricWriter.log`. Fine for a training loop, which logs a few points per step; bulk imports should "
                "use `log_series`."
            )
        if r.processes > 1:
            alone = [one for one in columnar if one.flush_points == r.flush_points]
            rate = (
                f"the aggregate rate is {r.points_per_second / alone[0].points_per_second:.2f}x one writer's at the "
                "same `flush_points`"
                if alone
                else f"the aggregate rate is {r.points_per_second:,.0f} points/s"
            )
            notes.append(
                f"- **{r.processes} writer processes** share one store: each makes its own `RemoteStore(path)` client "
                "(what `open_store()` returns), which finds the server the benchmark started, and sends its flushes "
                "there. The server's one committer thread runs one write transaction at a time (writes that queue up "
                "meanwhile share a commit), so flushes take turns (the median flush of "
                f"{r.flush_median_ms:.0f} ms includes the wait in that queue) and {rate}; on "
                f"{len(os.sched_getaffinity(0))} CPUs the writer processes and the server also compete for cores. "
                f"Errors: {len(r.errors)}."
            )
    served = [r.timing.median_ms for r in suite.results]
    notes.append(
        "- **Queries** go through the store server: each primitive of the store contract is one Arrow Flight request "
        "over a Unix socket (arguments as JSON; answers as JSON decoded into the Pydantic types, or frames as Arrow), "
        "run on a read connection the server lends for the request (one statement alone, several in one snapshot) "
        f"({_span(r.asked.operations for r in suite.results)} requests per call here, {_several_reads(suite)}). "
        "The server keeps the file open, so DuckDB's cache stays warm from call to call; "
        f"the served calls take {min(served):.1f} to {max(served):.1f} ms median. What is left is the SQL, the "
        "gRPC call over the socket and encoding and decoding the answer. A read runs in its snapshot beside a write in "
        "progress instead of waiting for it; writes queue for the server's one committer thread."
    )
    return notes


def _span(values) -> str:
    """'3' or '3 to 7': the range of some counts."""
    values = list(values)
    low, high = min(values), max(values)
    return f"{low}" if low == high else f"{low} to {high}"


def _several_reads(suite: QuerySuite) -> str:
    several = [f"`{r.name}` {r.asked.operations}" for r in suite.results if r.asked.operations > 1]
    if several:
        return (
            "and the conveniences built of several primitives make one request, in its own snapshot, per primitive: "
            + ", ".join(several)
        )
    return "one request each"


def _journal_fsync() -> str:
    """Whether each journaled call is fsynced, as the writer reads it (TUNEDECK_JOURNAL_FSYNC)."""
    return "fsynced" if get_settings().journal_fsync else "not fsynced, the default"


def _checkpoint_threshold() -> str:
    """DuckDB's default (the store sets none), read from this DuckDB rather than written down."""
    with duckdb.connect() as con:
        return con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()[0]


INGEST_METHOD = (
    "The bulk path, labelled as such (the user's path is in `## Peers`). A fresh store per run, reached as "
    "`open_store()` reaches it (`RemoteStore(path, idle_exit="
    f"{SERVER_IDLE_EXIT:.0f})`), so its first call starts the store server; one experiment and its runs are created "
    "through the store API (not timed). The clock runs from the first `log_series` / `log` call until the writer has "
    "closed, so every point is journaled and stored; afterwards each run's summary counts and two runs' full series "
    "are read back through the API. Each flush is also timed on its own, around the writer's `log_metrics` call "
    "(the request and its answer, which comes once the points are committed). The writer processes of the "
    "multi-process run each make their own `RemoteStore(path)`, which uses the running server. Store requests per "
    "flush are the requests sent while logging over the number of flushes. Then the server is stopped, which closes "
    "the file and checkpoints its WAL, and the file's size on disk is read."
)


def _page_method(pages: PageSuite) -> str:
    return (
        f"The same seeded store ({pages.experiments:,} experiments, {pages.runs:,} runs, built in "
        f"{pages.seed_seconds:.1f} s), as `<data_dir>/tunedeck.duckdb`, plus one experiment whose {pages.adapters} runs "
        "were completed through the store API to register adapters (seeded runs are completed already). The app runs "
        "with `TUNEDECK_DATA_DIR` on it and `TUNEDECK_EMBEDDED_WORKER=0`. Each sample is a fresh "
        '`AppTest.from_file("app.py")` session opening the page by its link (query parameters, then `switch_page`), '
        f"timed around `run()` only, {len(pages.pages[0].run.samples_ms)} times after 2 warm-ups; a sample that raised "
        'or showed "Something went wrong" fails the benchmark. AppTest adds its own work to `run()`, so these figures '
        "are an upper bound of the server-side script time; the script thread's own time is beside them. AppTest "
        "also searches every installed package for custom components in each new session, which the server does once "
        "when it starts: here that search is made once per process (`tests.apptest`), as in the server. Until "
        "2026-11-30 every sample paid it again (~130 ms on this machine), and these figures read 438 to 580 ms while "
        "the script threads took what they take now. The pages' "
        "`open_store()` starts the store server during the first page's warm-ups, so every sample goes through it. "
        "Store requests (one per store primitive called) and the Flight calls sent for them are counted over one more "
        "run of each page."
    )


def _chart_method(pages: PageSuite) -> str:
    return (
        f"A separate store with one experiment and {CHART_RUNS} runs of {CHART_STEPS:,} steps of `loss` "
        f"({pages.chart_points:,} points, logged with `MetricWriter.log_series` in {pages.chart_seed_seconds:.1f} s, not "
        "timed), served by its own store server, started by the logging, then left idle for "
        f"{CHART_SETTLE_S:.0f} s, in which its upkeep builds the runs' growing curve overviews. "
        f"Timed {len(pages.charts[0].timing.samples_ms)} times after 2 warm-ups: "
        f'`store.get_metric_series(run_ids, ["loss"], max_points={CHART_MAX_POINTS})`, and `core.charts.metric_spec(...)` '
        "on what it returned (the Vega-Lite dict the page hands Streamlit)."
    )


def _jobs_method(jobs: JobsSuite) -> str:
    return (
        "A fresh data directory whose store is served, as in production: the benchmark's first `open_store()` call "
        "starts the store server, and the workers and their training processes send their store operations to it. Workers are "
        "`python -m jobs.worker --workers 1` processes (one Huey consumer each), "
        "started and ready before the clock starts, and stopped afterwards. Runs are queued with `jobs.tasks.start_run` "
        "on an experiment over `data/sample/sentiment.csv`; times come from the runs' own `started_at` / `ended_at`, "
        "against the clock read just before the first `start_run`. Throughput is completed runs over the time from the "
        "first enqueue to the last run's end, with every run checked to have completed."
    )


def _query_method(suite: QuerySuite) -> str:
    return (
        f"Store: {suite.experiments:,} experiments, {suite.runs:,} runs, {suite.points:,} points "
        f"({suite.store_bytes / 2**20:.0f} MiB), bulk-built by `bench.seed.seed_tables` in {suite.seed_seconds:.1f} s "
        f"(not timed; {POINTS_PER_RUN // 4} steps of 4 keys per run, since seeding logs whole steps), in this process, "
        "which then closes the file. The operations go through the store server, as in production: a "
        f"`RemoteStore(path, idle_exit={SERVER_IDLE_EXIT:.0f})`, whose first call (in the untimed setup) starts it. "
        f"Each operation is timed through the public store API {len(suite.results[0].timing.samples_ms)} times "
        "after 2 warm-ups; store requests (one per store primitive called) and the Flight calls sent for them "
        "are counted over one more call."
    )


def _header(command: str, started: datetime, seconds: float, load: tuple[float, float]) -> list[str]:
    measured = (
        f"Measured by `{command}` on {started:%Y-%m-%d %H:%M} UTC ({seconds:.0f} s in all). "
        f"Rerun that command from the repository root to measure again: it rewrites this file except `{PEERS_HEADING}` "
        "(`python -m bench.peers` writes it) and the other sections it does not write itself, which it keeps as they are."
    )
    design = (
        "Every figure is taken as production runs: through the store server (`core.store_server`), the one process "
        "that holds the DuckDB file open; every other process reaches it through `core.remote.RemoteStore` (what "
        "`open_store()` returns), where each store operation is one Arrow Flight request over a Unix socket, run "
        "whole on the server. Reads run in a snapshot of their own beside any write; writes go to the server's one "
        "committer thread, which commits whatever queued up meanwhile together (group commit). The server's read "
        "cache is off (`TUNEDECK_READ_CACHE_MB=0`): a read repeated would otherwise be answered from memory, and the "
        "figures would say nothing of the store; `## Serving a team` shows pages with it and without."
    )
    facts = "Machine: " + "; ".join(f"{name} {value}" for name, value in machine().items()) + "."
    busy = (
        f"Load average (1 min) {load[0]:.2f} before and {load[1]:.2f} after the run; "
        "figures well above 1 mean other programs shared the CPUs with the benchmark."
    )
    return ["# Benchmarks", "", measured, "", design, "", facts, "", busy]


BULK_NOTE = (
    "The ingest rows are TuneDeck's bulk path (`MetricWriter.log_series` and `log`, into runs made before the clock, "
    "which are never completed); the user's own path, run by run through the SDK with each run created, logged and "
    "completed inside the clock, against MLflow, is in `## Peers`."
)


def _targets(ingest: list[IngestResult], suite: QuerySuite, pages: PageSuite, jobs: JobsSuite) -> list[str]:
    rows = [_ingest_row(result) for result in ingest] + [_query_row(result) for result in suite.results]
    rows += [_page_row(result) for result in pages.pages] + [_query_row(result) for result in pages.charts]
    rows += [_sample_row(jobs.sample)] + [_throughput_row(result) for result in jobs.throughput]
    return ["## Figures against the targets", "", BULK_NOTE, "", "| Benchmark | Measured | Target | Result |", "|---|---|---|---|", *rows]



def render(
    ingest: list[IngestResult],
    suite: QuerySuite,
    pages: PageSuite,
    jobs: JobsSuite,
    command: str,
    started: datetime,
    seconds: float,
    load: tuple[float, float],
) -> str:
    notes = _notes(ingest, suite) + _page_notes(pages) + _jobs_notes(jobs)
    sections = [
        _header(command, started, seconds, load),
        _targets(ingest, suite, pages, jobs),
        ["## Ingest", "", INGEST_METHOD, "", *_ingest_details(ingest)],
        ["## Queries", "", _query_method(suite), "", *_query_details(suite)],
        ["## Pages", "", _page_method(pages), "", *_page_details(pages)],
        ["## Chart data", "", _chart_method(pages), "", *_chart_details(pages)],
        ["## Jobs", "", _jobs_method(jobs), "", *_jobs_details(jobs)],
        _hot_spots(pages),
        ["## What bounds each figure", "", *notes],
    ]
    sections = [section for section in sections if section]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


def find_section(text: str, heading: str) -> re.Match | None:
    """A `## ` section of a Markdown text, up to the next `## ` heading."""
    return re.search(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", text, re.S | re.M)


def keep_other_sections(text: str, previous: str) -> str:
    """text with every `## ` section of previous (the file being rewritten) that text does not write itself appended,
    as it was: `## Peers` and `## Search` (bench.peers and bench.search rewrite them), `## Peers on PostgreSQL`, and
    the sections written by hand from other benchmarks. The profiles of slow pages are this run's own: when no page
    is slow, the last run's go."""
    written = set(re.findall(r"^## .*$", text, re.M)) | {SLOW_PAGES}
    for section in re.finditer(r"^## .*?(?=^## |\Z)", previous, re.S | re.M):
        if section.group(0).splitlines()[0] not in written:
            text = text.rstrip("\n") + "\n\n" + section.group(0).rstrip("\n") + "\n"
    return text
