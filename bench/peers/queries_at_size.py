"""The like-for-like queries of `bench.peers` at a size whose user path takes MLflow hours (2,000 runs x 100 steps:
200,000 `log_metrics` calls, about an hour per sample here). Both stores are built by their own bulk calls instead
(TuneDeck `log_series`, MLflow `log_batch`), in a fresh process each, untimed: the build is not a figure. Then the same
query phase as `bench.peers` on them (every system checked to hold the same runs and points first), the systems taking
turns call by call, TuneDeck's store server running and its read cache off.

    ../venv-bench/bin/python -m bench.peers.queries_at_size --runs 2000 --steps 100
    ../venv-bench/bin/python -m bench.peers.queries_at_size --runs 2000 --steps 100 --postgres
    ../venv-bench/bin/python -m bench.peers.queries_at_size --runs 2000 --steps 100 --cold 7

With --cold N, N rounds of `bench.peers`' cold processes follow on the same stores (after a warm-up round).

With --postgres both stores are databases of one private PostgreSQL 15 server (fsync on), as in
`bench.peers.on_postgres`, whose query phase (list, filter+order, 10 history calls) then runs.
"""

import argparse
import os
import shutil
import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.peers import children, report, systems
from bench.peers.__main__ import Bench, query_items, settle

CLOCK = {
    "list": "one call listing every run with its metrics' last values",
    "filter_order": "one call: runs with accuracy > 0.5, ordered by eval_loss",
    "history": "10 history calls (every `loss` point of one run each), runs spread over the store",
    "history_one_call": "TuneDeck only: the same 10 runs' `loss` in one call",
}


def build(bench: Bench, size: str, name: str, runs: int, steps: int) -> None:
    """The store through the system's bulk call, in a fresh process (bench.peers.sample), kept for the queries."""
    system = systems.load(name)
    folder, out = bench.folder(size, name), bench.root / size / f"{name}.json"
    args = ["bench.peers.sample", name, "bulk", str(folder), str(runs), str(steps), str(out)]
    result = children.run(args, out, children.environment(system.environment(folder)), bench.progress)
    bench.kept.setdefault(size, {})[name] = (folder, result["experiment"], result["run_ids"])
    bench.progress.message(f"built {name}'s store of {runs} runs in {result['seconds']:.0f} s (bulk, not a figure)")


def on_postgres(runs: int, steps: int, repeat: int) -> dict:
    """Both stores in databases of one private PostgreSQL server, built in bulk; the timed calls in ms by query."""
    from bench.peers.on_postgres import Server, prepare, queries, readers

    server, root, kept = Server(), Path(tempfile.mkdtemp(prefix="tunedeck-queries-pg-")), {}
    try:
        for name in ("TuneDeck", "MLflow"):
            folder, out = root / name, root / f"{name}.json"
            prepare(server, name, folder)
            args = ["bench.peers.sample", name, "bulk", str(folder), str(runs), str(steps), str(out)]
            result = children.run(args, out, children.environment(systems.load(name).environment(folder)))
            kept[name] = (folder, result["experiment"], result["run_ids"])
            print(f"built {name}'s store of {runs} runs in {result['seconds']:.0f} s (bulk, not a figure)", flush=True)
        stores = readers(kept)
        try:
            timings = queries(stores, runs, steps, repeat)
        finally:
            stores["TuneDeck"][1].close()
    finally:
        server.cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    return {item: {name: [{"ms": ms} for ms in got] for name, got in by.items()} for item, by in timings.items()}


def table(calls: dict) -> list[str]:
    lines = ["| Query | TuneDeck | MLflow | MLflow ÷ TuneDeck | Clock covers |", "|---|---|---|---|---|"]
    for item, by in calls.items():
        median = {name: statistics.median(s["ms"] for s in got) for name, got in by.items()}
        ratio = f"{median['MLflow'] / median['TuneDeck']:.1f}x" if "MLflow" in median else "—"
        mlflow = f"{median['MLflow']:.1f} ms" if "MLflow" in median else "—"
        lines.append(f"| {item} | {median['TuneDeck']:.1f} ms | {mlflow} | {ratio} | {CLOCK[item]} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--query-repeat", type=int, default=15, help="timed calls per query and system")
    parser.add_argument("--settle", type=float, default=60, help="first wait up to this long for a quiet machine")
    parser.add_argument("--postgres", action="store_true", help="both systems on one private PostgreSQL server")
    parser.add_argument("--cold", type=int, default=0, help="then this many rounds of cold processes (not with --postgres)")
    options = parser.parse_args()
    # what bench.peers' Bench reads of its options (its progress plan); this run has no ingest samples of its own
    options.peers, options.repeat, options.large_runs, options.large_steps = ["TuneDeck", "MLflow"], options.cold, 0, 0
    os.environ["TUNEDECK_STORE_SERVER_IDLE_EXIT"] = "3600"
    os.environ["TUNEDECK_READ_CACHE_MB"] = "0"  # read every time, as MLflow does
    settle(options.settle)
    started, load = datetime.now(UTC), os.getloadavg()[0]
    size = f"{options.runs}x{options.steps}"
    if options.postgres:
        calls = on_postgres(options.runs, options.steps, options.query_repeat)
    else:
        with tempfile.TemporaryDirectory(prefix="tunedeck-queries-") as scratch:
            bench = Bench(options, Path(scratch))
            try:
                for name in options.peers:
                    build(bench, size, name, options.runs, options.steps)
                bench.queries(size, options.runs, options.steps)
                if options.cold:
                    bench.cold(size)
            finally:
                bench.close()
        calls = bench.results["queries"][size]["calls"]
        cold_lines = report.cold_table(bench.results)[0] if options.cold else []
        assert set(calls) == set(query_items(options))
    where = "on PostgreSQL" if options.postgres else "embedded (DuckDB) beside MLflow on SQLite"
    print(f"\nbench.peers.queries_at_size {where} at {size}, {started:%Y-%m-%d %H:%M} UTC, {options.query_repeat} timed calls each, ")
    print(f"load average {load:.2f} before and {os.getloadavg()[0]:.2f} after; medians:\n")
    print("\n".join(table(calls)))
    if not options.postgres and options.cold:
        print(f"\nA cold process, {options.cold} rounds after a warm-up, the systems taking turns; {report.COLD_CLOCK}:\n")
        print("\n".join(cold_lines))


if __name__ == "__main__":
    main()
