"""BENCHMARKS.md from measured results: the machine, the figures against the targets, and what bounds them."""

import os
import platform
from datetime import datetime
from pathlib import Path

import duckdb
import numpy
import polars

from bench.ingest import IngestResult
from bench.queries import POINTS_PER_RUN, QueryResult, QuerySuite


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


def _ingest_details(results: list[IngestResult]) -> list[str]:
    lines = [
        (
            "| Run | Processes | Points | Seconds | Points/s | flush_points | Flushes | Median ms per flush "
            "| Seconds in flushes | Store on disk | Verified |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        verified = "every point stored" if not r.errors else "; ".join(r.errors[:3])
        lines.append(
            f"| `{r.label}` | {r.processes} | {r.points:,} | {r.seconds:.2f} | {r.points_per_second:,.0f} | {r.flush_points:,} "
            f"| {len(r.flush_ms)} | {r.flush_median_ms:.0f} | {sum(r.flush_ms) / 1000:.2f} | {r.store_bytes / 2**20:.0f} MiB "
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
        "(the fixed part is mostly opening, committing and closing the file)."
    )


def _query_details(suite: QuerySuite) -> list[str]:
    open_ms = suite.results[0].timing.median_ms
    lines = [
        "| Operation | Median ms | p90 ms | File opens per call | Open floor ms | Share of median |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in suite.results:
        floor = r.opens * open_ms
        lines.append(
            f"| `{r.name}` | {r.timing.median_ms:.1f} | {r.timing.p90_ms:.1f} | {r.opens} | {floor:.1f} "
            f"| {100 * floor / r.timing.median_ms:.0f}% |"
        )
    return lines


def _notes(ingest: list[IngestResult], suite: QuerySuite) -> list[str]:
    notes = []
    columnar = [r for r in ingest if r.label == "log_series"]
    if columnar:
        spread = ", ".join(f"{r.flush_median_ms:.0f} ms for {r.flush_points:,} points" for r in columnar)
        share = ", ".join(f"{100 * sum(r.flush_ms) / 1000 / r.seconds:.0f}%" for r in columnar)
        fittable = len({r.flush_points for r in columnar}) > 1 and all(len(r.flush_ms) >= 5 for r in columnar)
        fit = _flush_cost(columnar) if fittable else ""
        notes.append(
            "- **Columnar ingest** is bound by the flushes, not by Python: each flush is one `store.log_metrics` call "
            "that opens the file read-write, inserts the points, merges the run summaries, commits and closes it "
            f"(DuckDB checkpoints the WAL into the file on close). They take {share} of the run time. Median flush: "
            f"{spread}. {fit} Larger `flush_points` amortise the fixed part; "
            "`python -m bench.profile_ingest --flush-points 100000` shows the split by function."
        )
    for r in ingest:
        if r.label.startswith("log ("):
            python_us = (r.seconds - sum(r.flush_ms) / 1000) * 1e6 / r.points
            notes.append(
                f"- **Per-step `log()`** spends {python_us:.1f} µs per point in Python outside the flush: checking each "
                "run ID, step, key and value and appending to lists in `MetricWriter.log`. Fine for a training loop, "
                "which logs a few points per step; bulk imports should use `log_series`."
            )
        if r.processes > 1:
            notes.append(
                f"- **{r.processes} writer processes** share one file: DuckDB lets one process open it read-write at a "
                "time, so flushes take turns (the others back off and retry in `core.db.connect`; the median flush "
                f"of {r.flush_median_ms:.0f} ms includes that wait) and the aggregate rate stays near one writer's; on "
                f"{len(os.sched_getaffinity(0))} CPUs the processes also compete for cores. Errors: {len(r.errors)}."
            )
    open_ms = suite.results[0].timing.median_ms
    notes.append(
        f"- **Queries** have a floor: every store call opens and closes the file read-only ({open_ms:.0f} ms median "
        "alone) and some do it twice (`compare_runs` reads the runs, then their experiment; `get_run_metrics` the "
        "run, then its points; `get_experiment_detail` the experiment, then its runs). Above the floor is the SQL, "
        "which runs cold because each open starts DuckDB with an empty cache, and building the Pydantic objects."
    )
    return notes


INGEST_METHOD = (
    "A fresh store per run, with one experiment and its runs created through the store API (not timed). "
    "The clock runs from the first `log_series` / `log` call until the writer has closed, so every point is "
    "stored; afterwards each run's summary counts and two runs' full series are read back through the API."
)


def _query_method(suite: QuerySuite) -> str:
    return (
        f"Store: {suite.experiments:,} experiments, {suite.runs:,} runs, {suite.points:,} points "
        f"({suite.store_bytes / 2**20:.0f} MiB), bulk-built by `bench.seed.build_store` in {suite.seed_seconds:.1f} s "
        f"(not timed; {POINTS_PER_RUN // 4} steps of 4 keys per run, since seeding logs whole steps). "
        f"Each operation is timed through the public store API {len(suite.results[0].timing.samples_ms)} times "
        "after 2 warm-ups. The first row is DuckDB alone: `duckdb.connect(path, read_only=True)` then `close()`."
    )


def _header(command: str, started: datetime, seconds: float, load: tuple[float, float]) -> list[str]:
    measured = (
        f"Measured by `{command}` on {started:%Y-%m-%d %H:%M} UTC ({seconds:.0f} s in all). "
        "Rerun that command from the repository root to measure again: it rewrites this file."
    )
    facts = "Machine: " + "; ".join(f"{name} {value}" for name, value in machine().items()) + "."
    busy = (
        f"Load average (1 min) {load[0]:.2f} before and {load[1]:.2f} after the run; "
        "figures well above 1 mean other programs shared the CPUs with the benchmark."
    )
    return ["# Benchmarks", "", measured, "", facts, "", busy]


def _targets(ingest: list[IngestResult], suite: QuerySuite) -> list[str]:
    rows = [_ingest_row(result) for result in ingest] + [_query_row(result) for result in suite.results]
    return ["## Figures against the targets", "", "| Benchmark | Measured | Target | Result |", "|---|---|---|---|", *rows]


def render(
    ingest: list[IngestResult], suite: QuerySuite, command: str, started: datetime, seconds: float, load: tuple[float, float]
) -> str:
    sections = [
        _header(command, started, seconds, load),
        _targets(ingest, suite),
        ["## Ingest", "", INGEST_METHOD, "", *_ingest_details(ingest)],
        ["## Queries", "", _query_method(suite), "", *_query_details(suite)],
        ["## What bounds each figure", "", *_notes(ingest, suite)],
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"
