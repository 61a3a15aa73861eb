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
        "| Run | Points | Seconds | Points/s | flush_points | Flushes per writer | ms per flush | Store on disk | Verified |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        per_flush = r.seconds * 1000 / r.flushes
        verified = "all points stored" if not r.errors else "; ".join(r.errors[:3])
        lines.append(
            f"| `{r.label}` ×{r.processes} | {r.points:,} | {r.seconds:.2f} | {r.points_per_second:,.0f} | {r.flush_points:,} "
            f"| {r.flushes} | {per_flush:.0f} | {r.store_bytes / 2**20:.0f} MiB | {verified} |"
        )
    return lines


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
        spread = ", ".join(f"{r.seconds * 1000 / r.flushes:.0f} ms at {r.flush_points:,} points" for r in columnar)
        notes.append(
            "- **Columnar ingest** is bound by the cost of each flush, not by Python: every flush is one "
            "`store.log_metrics` call that opens the file read-write, inserts, merges the run summaries, commits and "
            "closes it (DuckDB checkpoints the WAL into the file on close). Measured per flush: "
            f"{spread}. The open + commit + close part is roughly fixed whatever the batch size, so larger "
            "`flush_points` amortise it; `python -m bench.profile_ingest --flush-points 100000` shows the split."
        )
    for r in ingest:
        if r.label.startswith("log ("):
            notes.append(
                f"- **Per-step `log()`** costs {1e6 / r.points_per_second:.1f} µs per point: Python validation of each "
                "run ID, step, key and value and appending to lists in `MetricWriter.log`. Fine for a training loop, "
                "which logs a few points per step; bulk imports should use `log_series`."
            )
        if r.processes > 1:
            notes.append(
                f"- **{r.processes} writer processes** share one file: DuckDB lets one process open it read-write at a "
                "time, so flushes take turns (the others back off and retry in `core.db.connect`) and the aggregate rate "
                f"stays near one writer's; on {len(os.sched_getaffinity(0))} CPUs the processes also compete for cores. "
                f"Errors: {len(r.errors)}."
            )
    open_ms = suite.results[0].timing.median_ms
    notes.append(
        f"- **Queries** are bound by opening the file: every store call opens it read-only ({open_ms:.0f} ms median "
        "here) and some calls twice (`compare_runs` reads the runs, then their experiment; `get_run_metrics` reads the "
        "run, then its points; `get_experiment_detail` the experiment, then its runs). The SQL itself takes the rest."
    )
    return notes


def render(ingest: list[IngestResult], suite: QuerySuite, command: str, started: datetime, seconds: float) -> str:
    facts = machine()
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `{command}` on {started:%Y-%m-%d %H:%M} UTC ({seconds:.0f} s in all). "
        "Rerun that command from the repository root to measure again: it rewrites this file.",
        "",
        "Machine: " + "; ".join(f"{name} {value}" for name, value in facts.items()) + ".",
        "",
        "## Figures against the targets",
        "",
        "| Benchmark | Measured | Target | Result |",
        "|---|---|---|---|",
        *[_ingest_row(result) for result in ingest],
        *[_query_row(result) for result in suite.results],
        "",
        "## Ingest",
        "",
        "A fresh store per run, with one experiment and its runs created through the store API (not timed). "
        "The clock runs from the first `log_series` / `log` call until the writer has closed, so every point is "
        "stored; afterwards each run's summary counts and two runs' full series are read back through the API.",
        "",
        *_ingest_details(ingest),
        "",
        "## Queries",
        "",
        f"Store: {suite.experiments:,} experiments, {suite.runs:,} runs, {suite.points:,} points "
        f"({suite.store_bytes / 2**20:.0f} MiB), bulk-built by `bench.seed.build_store` in {suite.seed_seconds:.1f} s "
        f"(not timed; {POINTS_PER_RUN // 4} steps of 4 keys per run, since seeding logs whole steps). Each operation is timed through "
        f"the public store API {len(suite.results[0].timing.samples_ms)} times after 2 warm-ups. "
        "The first row is DuckDB alone: `duckdb.connect(path, read_only=True)` then `close()`.",
        "",
        *_query_details(suite),
        "",
        "## What bounds each figure",
        "",
        *_notes(ingest, suite),
        "",
    ]
    return "\n".join(lines)
