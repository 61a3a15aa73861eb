"""Run one workload against TuneDeck, MLflow and Aim, print the table, and rewrite `## Peers` in BENCHMARKS.md.

    pip install -r requirements-bench.txt     # mlflow and aim: for this benchmark only, never for CI
    python -m bench.peers                     # the issue's workload
    python -m bench.peers --large-steps 10    # the 2,000-run store with fewer steps (list and filter read last values only)

Each system gets fresh folders. Ingests run one system at a time; then each query is timed on every system,
one system right after the other; every figure is the median of --repeat samples after two warm-up calls.
"""

import argparse
import cProfile
import functools
import io
import json
import os
import platform
import pstats
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from bench.peers import aim_peer, mlflow_peer, report, tunedeck
from bench.peers.workload import HISTORY_RUNS, curves, expected_filtered
from bench.timing import measure
from core.duckdb_store import whole_series_query
from core.sql import arrow_table

PEERS = {
    "TuneDeck": tunedeck.TuneDeck(served=True),
    "TuneDeck before the server": tunedeck.TuneDeck(served=False),
    "MLflow": mlflow_peer,
    "Aim": aim_peer,
}
SMALL_ONLY = {"TuneDeck before the server"}  # the design before the store server: shown beside it, not a peer
OUTPUT = Path(__file__).resolve().parents[2] / "BENCHMARKS.md"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--large-runs", type=int, default=2000)
    parser.add_argument("--large-steps", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=15, help="samples per query and system")
    parser.add_argument(
        "--settle",
        type=float,
        default=120,
        help="wait up to this many seconds for a quiet machine, first and again before the queries",
    )
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated subset of {','.join(PEERS)}")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--json", type=Path, help="also keep the raw figures here")
    return parser.parse_args()


def check_filter(module, folder: Path, ingested, expected: int) -> None:
    """The filter must return exactly the runs the workload says end above 0.5, or the timings compare nothing."""
    found = module.filter_order(folder, ingested)
    if len(found) != expected:
        raise SystemExit(f"{module.__name__}: filter returned {len(found)} runs, expected {expected}")


def settle(limit: float, quiet: float = 0.5) -> float:
    """Wait (up to `limit` seconds) until the 1-minute load average drops below `quiet`; returns the seconds waited.

    Whatever ran just before (a test suite, another benchmark) would otherwise slow the first system measured.
    """
    start = time.monotonic()
    while os.getloadavg()[0] >= quiet and time.monotonic() - start < limit:
        time.sleep(2)
    return time.monotonic() - start


@dataclass
class Prepared:
    """One system's stores, ready to be queried, and what building them measured."""

    module: object
    result: dict
    stores: dict  # "small" / "large" -> (folder, Ingested)


def build(name: str, module, folder: Path, options) -> Prepared:
    """Ingest both stores (timed), take the size on disk and TuneDeck's profiles; the queries come later."""
    small, large = folder / "small", folder / "large"
    small.mkdir(), large.mkdir()
    ingested = module.ingest(small, options.runs, options.steps)
    result = {"ingest_s": ingested.seconds, "points": ingested.points, "points_per_s": ingested.points_per_second}
    if ingested.flush_ms is not None:
        result["flush_ms"] = ingested.flush_ms
    if hasattr(module, "index"):
        result["index_s"] = module.index(small, ingested)
    check_filter(module, small, ingested, expected_filtered(options.runs, options.steps))
    result["history_points"] = module.history(small, ingested, ingested.run_ids[:HISTORY_RUNS])
    if hasattr(module, "done"):
        module.done(small)  # TuneDeck: the server closes the file, as at any idle exit, before it is measured
    result["bytes"] = module.size_on_disk(small)
    if name == "TuneDeck":
        result["history_query_ms"] = history_query_ms(small, ingested.run_ids[:HISTORY_RUNS], options.repeat)
    print(f"{name}: {ingested.points_per_second:,.0f} points/s, small store built", flush=True)
    if name in SMALL_ONLY:
        return Prepared(module, result, {"small": (small, ingested)})
    big = module.ingest(large, options.large_runs, options.large_steps)
    result["large_ingest_s"] = big.seconds
    if hasattr(module, "index"):
        result["large_index_s"] = module.index(large, big)
    check_filter(module, large, big, expected_filtered(options.large_runs, options.large_steps))
    if name == "TuneDeck":
        result["profile"] = profile_list(module, large, big)
        module.done(large)
        result["profile"]["open_close_ms"] = open_close_ms(large)
        result["ingest_profile"] = profile_ingest(module, folder / "profiled", options.runs, options.steps)
    print(f"{name}: large store built", flush=True)
    return Prepared(module, result, {"small": (small, ingested), "large": (large, big)})


def query(module, name: str):
    """The call to time: one of the workload's queries, on a (folder, Ingested) store."""
    calls = {
        "list": module.list_latest,
        "filter_order": module.filter_order,
        "list_runs": getattr(module, "list_runs", None),  # TuneDeck only: its Pydantic API beside the frame
        "history": lambda folder, ingested: module.history(folder, ingested, ingested.run_ids[:HISTORY_RUNS]),
    }
    return calls[name]


def time_side_by_side(prepared: dict[str, Prepared], repeat: int) -> None:
    """Time each query on every system, one system right after the other, once every store is built.

    So the systems' figures for one query are taken within seconds of each other, not minutes apart with
    ingests between them. Each system's samples are taken back to back after two warm-up calls (as `timeit`
    does): interleaving single calls would time each call cold, after another system's call had filled the
    CPU caches and let DuckDB's threads sleep (+1.5 to 2 ms on a 2.5 ms call here, in-process as well).
    Every store stays in place until all are measured; TuneDeck's servers start again on a warm-up call.
    """
    for size, names in (
        ("small", ("list", "filter_order", "list_runs", "history")),
        ("large", ("list", "filter_order", "list_runs")),
    ):
        for name in names:
            figures = {}
            for system, built in prepared.items():
                call = query(built.module, name)
                if size not in built.stores or call is None:
                    continue
                figures[system] = measure(functools.partial(call, *built.stores[size]), repeat, 2).median_ms
                if name == "history":
                    built.result["history_ms"] = figures[system]
                else:
                    built.result.setdefault(size, {})[name] = figures[system]
            print(f"{size} {name}: " + ", ".join(f"{system} {ms:.1f} ms" for system, ms in figures.items()), flush=True)


def close(prepared: dict[str, Prepared]) -> None:
    for built in prepared.values():
        if hasattr(built.module, "done"):
            for folder, _ in built.stores.values():
                built.module.done(folder)


def profile_list(module, folder: Path, ingested) -> dict:
    """Where one runs_table call at 2,000 runs spends its time: the server round trip vs the work in this process."""
    profiler = cProfile.Profile()
    profiler.enable()
    module.list_latest(folder, ingested)
    profiler.disable()
    stats = pstats.Stats(profiler)

    def cumulative(fragment: str) -> float:
        return 1000 * max((entry[3] for func, entry in stats.stats.items() if fragment in func[2]), default=0.0)

    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(12)
    return {
        "total_ms": 1000 * stats.total_tt,
        "server_ms": cumulative("call"),  # RemoteConnection.call: send, wait for the server, receive
        "pivot_ms": cumulative("agg"),  # the group_by that turns one row per metric into one column per metric
        "text": text.getvalue(),
    }


def history_query_ms(folder: Path, run_ids: list[int], repeat: int) -> float:
    """The history's DuckDB query alone, on a connection held open in this process (once the server has gone)."""
    query, params = whole_series_query(run_ids, ["loss"])
    con = duckdb.connect(str(folder / "tunedeck.duckdb"), read_only=True)
    try:
        return measure(lambda: arrow_table(con, query, params), max(repeat, 15), 3).median_ms
    finally:
        con.close()


def open_close_ms(folder: Path) -> float:
    """What every call paid before the store server: a bare read-only open + close (once the server has gone)."""
    path = str(folder / "tunedeck.duckdb")
    return measure(lambda: duckdb.connect(path, read_only=True).close(), 5, 1).median_ms


def profile_ingest(module, folder: Path, runs: int, steps: int) -> str:
    """cProfile of the timed part of one more TuneDeck ingest (fresh store), by time spent inside each function."""
    folder.mkdir()
    store, _, run_ids = module.prepare(folder, runs)
    series = [curves(index, steps) for index in range(runs)]
    profiler = cProfile.Profile()
    profiler.enable()
    tunedeck.log(store, run_ids, series)
    profiler.disable()
    module.done(folder)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(8)
    return f"flushes (ms): {', '.join(f'{ms:.0f}' for ms in store.flush_ms)}\n" + text.getvalue()


def machine() -> dict:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line), "?"
    )
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "duckdb": duckdb.__version__}


def main() -> None:
    options = arguments()
    waited = settle(options.settle)
    started, clock, load_before = datetime.now(UTC), time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tunedeck-peers-") as root:
        prepared = {}
        try:
            for name in options.peers.split(","):
                (Path(root) / name).mkdir()
                prepared[name] = build(name, PEERS[name], Path(root) / name, options)
            os.sync()  # the ingests' writes go to disk now, not while some system's queries are timed
            waited_again = settle(options.settle)  # and Aim's background compaction, say, has finished
            time_side_by_side(prepared, options.repeat)
        finally:
            close(prepared)
        results = {name: built.result for name, built in prepared.items()}
    versions = {**machine(), "mlflow": mlflow_peer.version(), "aim": aim_peer.version()}
    run = {
        "command": " ".join(["python -m bench.peers", *sys.argv[1:]]),
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": time.perf_counter() - clock,
        "load": (load_before, os.getloadavg()[0]),
        "settled_s": waited,
        "settled_before_queries_s": waited_again,
        "machine": versions,
        "options": vars(options) | {"output": str(options.output), "json": str(options.json)},
        "results": results,
    }
    if options.json:
        options.json.write_text(json.dumps(run, indent=1))
    print(report.table(run))
    report.rewrite(options.output, report.section(run))
    print(f"rewrote the Peers section of {options.output}")


if __name__ == "__main__":
    main()
