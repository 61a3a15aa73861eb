"""Search benchmark: the search language over 20,000 runs, and rewrite `## Search` in BENCHMARKS.md.

    python -m bench.search                      # 1,000 experiments x 20 runs, tagged
    python -m bench.search --output /tmp/s.md   # anywhere else

Two clocks: the query alone (compile the text and filter a search frame already in memory: what
a search costs once the page holds the frame) and the whole call a page makes (`search_frame`
through the store server, one request, then the same query).
"""

import argparse
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench import report
from bench.seed import require_server, seed_tables, served, stop_server
from bench.timing import Timing, measure
from core.duckdb_store import DuckDBStore
from core.search_compiler import compile_search, search
from core.sql import rows

OUTPUT = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADING = "## Search"
EXPERIMENTS, RUNS_PER_EXPERIMENT, POINTS_PER_RUN = 1_000, 20, 8
TARGET_MS = 50
QUERY = (
    'params.learning_rate < 0.005 and metrics.eval_loss.min < 1.9 and (tags.base = "llama" or status = completed) '
    'and experiment contains "experiment 9"'
)
_TAGS = """
    INSERT INTO tags (target, target_id, key, value)
    SELECT 'run', id, 'base', CASE WHEN id % 2 = 0 THEN 'llama' ELSE 'gpt2' END FROM runs
    UNION ALL SELECT 'experiment', id, 'team', 'nlp' FROM experiments
"""


def seed(path: Path) -> int:
    seed_tables(path, EXPERIMENTS, RUNS_PER_EXPERIMENT, POINTS_PER_RUN)
    store = DuckDBStore(path)
    try:
        store.db.write(lambda con: rows(con, _TAGS))
    finally:
        store.close()
    return EXPERIMENTS * RUNS_PER_EXPERIMENT


def run(folder: Path, repeat: int) -> dict[str, Timing | int]:
    path = folder / "store.duckdb"
    runs = seed(path)
    store = served(path)
    try:
        frame = store.search_frame()  # starts the server, off the clock
        require_server(store.path, "bench.search")
        results: dict[str, Timing | int] = {
            "runs": frame.height,
            "columns": frame.width,
            "matched": search(frame, QUERY).height,
            "compile": measure(lambda: compile_search(QUERY, frame.schema), repeat),
            "query": measure(lambda: search(frame, QUERY), repeat),
            "frame": measure(store.search_frame, repeat),
            "whole": measure(lambda: search(store.search_frame(), QUERY), repeat),
            "one experiment": measure(lambda: search(store.search_frame([500]), QUERY), repeat),
        }
    finally:
        stop_server(store.path)
    assert results["runs"] == runs
    return results


def section(results: dict, repeat: int) -> str:
    def row(name: str, key: str, target: bool) -> str:
        timing = results[key]
        verdict = ("pass" if timing.median_ms <= TARGET_MS else "miss") if target else "—"
        limit = f"≤ {TARGET_MS} ms median" if target else "—"
        return f"| {name} | median {timing.median_ms:.1f} ms (p90 {timing.p90_ms:.1f} ms) | {limit} | {verdict} |"

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            HEADING,
            "",
            f"Measured by `python -m bench.search` on {stamp} ({repeat} timed calls each after 2 warm-ups), over "
            f"{results['runs']:,} runs in {EXPERIMENTS:,} experiments (a search frame of {results['columns']} columns: "
            f"3 params, 4 metrics x last/min/max, 2 tags); the query matches {results['matched']:,} runs:",
            "",
            f"`{QUERY}`",
            "",
            "| What is timed | Measured | Target | Result |",
            "|---|---|---|---|",
            row("Compile the query (tokenize, parse, check fields, build the Polars expression)", "compile", False),
            row("The query: compile + filter the 20,000-run frame in memory", "query", True),
            row("`search_frame()`: every live run, one request through the store server", "frame", False),
            row("The whole call a Runs page makes: `search_frame()` + the query", "whole", True),
            row("The experiment page's call: `search_frame([one experiment])` + the query", "one experiment", False),
            "",
            "The query itself is what the target bounds; the whole call is dominated by reading and widening the "
            "20,000 runs (three queries in the server, decoding each run's config, the pivots into columns, Arrow "
            "across the socket). The Runs page keeps the frame for a few seconds, so refining a query costs the "
            f"query alone. Load average (1 min) when written: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
            "(well above the CPU count means other programs shared them and every figure is inflated).",
        ]
    )


def rewrite(path: Path, text: str) -> None:
    """Replace the `## Search` section (up to the next `## ` heading), or append it."""
    current = path.read_text() if path.exists() else ""
    found = report.find_section(current, HEADING)
    before, after = (current, "") if found is None else (current[: found.start()], current[found.end() :])
    path.write_text("\n\n".join(part for part in (before.rstrip("\n"), text, after.strip("\n")) if part) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed calls per figure, after 2 warm-ups")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the Markdown file whose `## Search` is rewritten")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tunedeck-search-") as folder:
        results = run(Path(folder), options.repeat)
    text = section(results, options.repeat)
    print(text)
    rewrite(options.output, text)


if __name__ == "__main__":
    main()
