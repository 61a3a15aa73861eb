"""The soak test's figures, and the `## Load` section of RELIABILITY.md.

`python -m tests.reliability.load_report` runs the soak test and rewrites that section; a plain
pytest run only prints the figures.
"""

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

HEADING = "## Load"
REPORT_TO = "TUNEDECK_RELIABILITY_REPORT"  # the soak test writes its section into the file this names
DOCUMENT = Path(__file__).resolve().parents[2] / "RELIABILITY.md"


@dataclass
class LoadFigures:
    workers: int
    readers: int
    runs: int
    runs_completed: int
    keys_per_step: int
    flood_seconds: float
    held_seconds: float
    points_logged: int
    points_stored: int
    latencies: dict[str, list[float]]
    reader_errors: list[str] = field(default_factory=list)
    writer_errors: list[str] = field(default_factory=list)

    @property
    def points_lost(self) -> int:
        return self.points_logged - self.points_stored

    @property
    def reads(self) -> int:
        return sum(len(seconds) for seconds in self.latencies.values())

    def percentiles_ms(self, page: str | None = None) -> tuple[float, float]:
        """p50 and p99 read latency in milliseconds, of one page or of every read."""
        seconds = self.latencies[page] if page else [s for values in self.latencies.values() for s in values]
        if not seconds:
            return float("nan"), float("nan")
        p50, p99 = np.percentile(seconds, [50, 99])
        return p50 * 1000, p99 * 1000


def _where() -> str:
    """Where the soak's store lies: the tests' temporary folder (tests/conftest.py puts it in memory where it can)."""
    folder = tempfile.gettempdir()
    return "in memory (`/dev/shm`, the tests' temporary folder)" if folder.startswith("/dev/shm") else f"in {folder}"


def render(figures: LoadFigures, today: datetime | None = None) -> str:
    """The section, heading included, ending in one newline."""
    today = today or datetime.now(UTC)
    p50, p99 = figures.percentiles_ms()
    rate = figures.points_logged / figures.held_seconds if figures.held_seconds else 0
    lines = [
        HEADING,
        "",
        "Soak test: `tests/reliability/test_soak.py`. Run `python -m tests.reliability.load_report` to measure again;",
        "it rewrites this section (and only this section) and prints the same figures.",
        "",
        (
            f"Last measured {today:%Y-%m-%d} on {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
            f"DuckDB store {_where()}, SQLite queue."
        ),
        "",
        "| Load held | |",
        "| --- | --- |",
        (
            f"| Writers | {figures.workers} worker processes (`--workers 1`) ran {figures.runs} `flood` jobs, each logging "
            f"{figures.keys_per_step} metrics per step through `core.tracking` as fast as it could for {figures.flood_seconds:g} s |"
        ),
        f"| Readers | {figures.readers} processes in a loop, back to back: list experiments, open a run, compare 4 runs (the pages' reads) |",
        f"| Duration | {figures.held_seconds:.0f} s, from queueing the runs until every run finished (or the test gave up) |",
        "",
        "| Figure | Value |",
        "| --- | --- |",
        f"| Runs completed | {figures.runs_completed} of {figures.runs} |",
        f"| Points logged | {figures.points_logged:,} ({rate:,.0f} points/s over the whole run) |",
        f"| Points in the store | {figures.points_stored:,} (counted per run and key) |",
        f"| Points lost | {figures.points_lost:,} |",
        f"| Reads | {figures.reads:,} |",
        f"| Read latency p50 / p99 | {p50:.0f} ms / {p99:.0f} ms |",
        f"| Errors | {len(figures.reader_errors)} surfaced to readers, {len(figures.writer_errors)} to writers |",
        "",
        "| Page | Reads | p50 | p99 |",
        "| --- | --- | --- | --- |",
    ]
    for page, seconds in figures.latencies.items():
        page_p50, page_p99 = figures.percentiles_ms(page)
        lines.append(f"| {page} | {len(seconds):,} | {page_p50:.0f} ms | {page_p99:.0f} ms |")
    return "\n".join(lines) + "\n"


def replace_section(document: str, section: str) -> str:
    """The document with its `## Load` section (up to the next `## ` heading) replaced, or appended if absent."""
    if not document.strip():
        return f"# Reliability\n\n{section}"
    found = re.search(rf"^{re.escape(HEADING)}[ \t]*$.*?(?=^## |\Z)", document, flags=re.MULTILINE | re.DOTALL)
    if found is None:
        return document.rstrip("\n") + "\n\n" + section
    following = document[found.end() :]
    return document[: found.start()] + section + ("\n" if following else "") + following


def write_section(path: Path, section: str) -> None:
    path.write_text(replace_section(path.read_text(encoding="utf-8") if path.exists() else "", section), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the soak test with the report switched on; its exit status is pytest's."""
    argparse.ArgumentParser(prog="python -m tests.reliability.load_report", description=__doc__).parse_args(argv)
    test = "tests/reliability/test_soak.py::test_flooding_writers_and_looping_readers_see_no_errors_and_lose_no_points"
    env = {**os.environ, REPORT_TO: str(DOCUMENT)}
    return subprocess.call([sys.executable, "-m", "pytest", test, "-q", "-s", "-n", "0"], env=env, cwd=DOCUMENT.parent)


if __name__ == "__main__":
    sys.exit(main())
