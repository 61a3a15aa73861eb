"""Run one workload against TuneDeck, MLflow and Aim, print the table, and rewrite `## Peers` in BENCHMARKS.md.

    pip install -r requirements-bench.txt     # mlflow and aim: for this benchmark only, never for CI
    python -m bench.peers                     # the issue's workload
    python -m bench.peers --large-steps 10    # the 2,000-run store with fewer steps (list and filter read last values only)

Each system gets fresh folders; every figure is the median of --repeat samples after one warm-up.
"""

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from bench.peers import aim_peer, mlflow_peer, report, tunedeck
from bench.peers.workload import HISTORY_RUNS, curves, expected_filtered
from bench.timing import measure
from core.duckdb_store import whole_series_query

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
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--settle", type=float, default=120, help="wait up to this many seconds for a quiet machine first")
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated subset of {','.join(PEERS)}")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--json", type=Path, help="also keep the raw figures here")
    return parser.parse_args()


def timed_queries(module, folder: Path, ingested, repeat: int, expected: int) -> dict:
    """Median ms of each query; the filter must return exactly the runs the workload says end above 0.5."""
    found = module.filter_order(folder, ingested)
    if len(found) != expected:
        raise SystemExit(f"{module.__name__}: filter returned {len(found)} runs, expected {expected}")
    queries = {"list": module.list_latest, "filter_order": module.filter_order}
    if hasattr(module, "list_runs"):
        queries["list_runs"] = module.list_runs
    return {name: measure(lambda q=query: q(folder, ingested), repeat, 1).median_ms for name, query in queries.items()}


def settle(limit: float, quiet: float = 0.5) -> float:
    """Wait (up to `limit` seconds) until the 1-minute load average drops below `quiet`; returns the seconds waited.

    Whatever ran just before (a test suite, another benchmark) would otherwise slow the first system measured.
    """
    start = time.monotonic()
    while os.getloadavg()[0] >= quiet and time.monotonic() - start < limit:
        time.sleep(2)
    return time.monotonic() - start


def bench_peer(name: str, module, folder: Path, options) -> dict:
    small, large = folder / "small", folder / "large"
    small.mkdir(), large.mkdir()
    ingested = module.ingest(small, options.runs, options.steps)
    result = {"ingest_s": ingested.seconds, "points": ingested.points, "points_per_s": ingested.points_per_second}
    if ingested.flush_ms is not None:
        result["flush_ms"] = ingested.flush_ms
    if hasattr(module, "index"):
        result["index_s"] = module.index(small, ingested)
    result["small"] = timed_queries(module, small, ingested, options.repeat, expected_filtered(options.runs, options.steps))
    history_runs = ingested.run_ids[:HISTORY_RUNS]
    result["history_ms"] = measure(lambda: module.history(small, ingested, history_runs), options.repeat, 1).median_ms
    result["history_points"] = module.history(small, ingested, history_runs)
    print(f"{name}: {ingested.points_per_second:,.0f} points/s, small store done", flush=True)
    if hasattr(module, "done"):
        module.done(small)  # TuneDeck: the server closes the file, as at any idle exit, before it is measured
    result["bytes"] = module.size_on_disk(small)
    if name == "TuneDeck":
        result["history_query_ms"] = history_query_ms(small, history_runs, options.repeat)
    if name in SMALL_ONLY:
        return result
    big = module.ingest(large, options.large_runs, options.large_steps)
    result["large_ingest_s"] = big.seconds
    if hasattr(module, "index"):
        result["large_index_s"] = module.index(large, big)
    expected = expected_filtered(options.large_runs, options.large_steps)
    result["large"] = timed_queries(module, large, big, options.repeat, expected)
    if name == "TuneDeck":
        result["profile"] = profile_list(module, large, big)
        module.done(large)
        result["profile"]["open_close_ms"] = open_close_ms(large)
        result["ingest_profile"] = profile_ingest(module, folder / "profiled", options.runs, options.steps)
    print(f"{name}: {result}", flush=True)
    return result


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
        return measure(lambda: con.sql(query, params=params).arrow().read_all(), max(repeat, 15), 3).median_ms
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
    results = {}
    with tempfile.TemporaryDirectory(prefix="tunedeck-peers-") as root:
        for name in options.peers.split(","):
            (Path(root) / name).mkdir()
            results[name] = bench_peer(name, PEERS[name], Path(root) / name, options)
    versions = {**machine(), "mlflow": mlflow_peer.version(), "aim": aim_peer.version()}
    run = {
        "command": " ".join(["python -m bench.peers", *sys.argv[1:]]),
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": time.perf_counter() - clock,
        "load": (load_before, os.getloadavg()[0]),
        "settled_s": waited,
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
