"""TuneDeck in team mode beside MLflow 3.17, both on one private PostgreSQL server; rewrites `## Peers on PostgreSQL`
in BENCHMARKS.md (a `### Notes` subsection at its end, figures measured apart, is kept).

    ../venv-bench/bin/python -m bench.peers.on_postgres                       # reduced sizes (see --help)

The user's path as in `bench.peers`: each sample is a fresh process (`bench.peers.sample`) that creates, logs and
completes every run through the SDK (TuneDeck: `tracking.start_run` + `run.log`; MLflow: `mlflow.start_run` +
`log_metrics`), clock around all of it, the two systems interleaved sample by sample, each sample in a fresh
database. Then the queries on the last sample's databases, interleaved, one warm-up call before each timed one.
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench.peers import children, report, systems
from bench.peers.workload import HISTORY_CALLS, ISSUE_SIZES, expected_filtered, spread
from core.sql import identifier
from tests.postgres import Cluster, binaries

OUTPUT = Path(__file__).resolve().parents[2] / "BENCHMARKS.md"
HEADING = "## Peers on PostgreSQL"
QUERIES = ("list", "filter_order", "history")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--large-runs", type=int, default=200)
    parser.add_argument("--large-steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="ingest samples per system and size")
    parser.add_argument("--query-repeat", type=int, default=7, help="timed calls per query and system")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    return parser.parse_args()


class Server:
    """A private PostgreSQL, durable as a real one (fsync on), and a fresh database per sample."""

    def __init__(self):
        self.cluster = Cluster(binaries(), durable=True).start()
        self.count = 0

    def database(self, system: str) -> str:
        self.count += 1
        name = f"{system.lower()}_{self.count}"
        with psycopg.connect(self.cluster.url, autocommit=True) as con:
            con.execute(f"CREATE DATABASE {identifier(name)}")
        return name

    def size(self, name: str) -> int:
        with psycopg.connect(self.cluster.url, autocommit=True) as con:
            return con.execute("SELECT pg_database_size(%s)", [name]).fetchone()[0]


def prepare(server: Server, system: str, folder: Path) -> str:
    """The sample's folder, naming a fresh database the way each system is pointed at PostgreSQL."""
    folder.mkdir(parents=True)
    name = server.database(system)
    url = server.cluster.database_url(name)
    if system == "MLflow":
        (folder / "tracking-uri").write_text(url.replace("postgresql://", "postgresql+psycopg://"))
    else:
        (folder / "store-url").write_text(url)
    return name


def ingest(server: Server, root: Path, options, runs: int, steps: int) -> tuple[dict, dict]:
    samples: dict[str, list[dict]] = {"TuneDeck": [], "MLflow": []}
    kept: dict[str, tuple] = {}
    for index in range(options.repeat):
        for name in ("TuneDeck", "MLflow") if index % 2 == 0 else ("MLflow", "TuneDeck"):
            folder = root / f"{runs}x{steps}" / name / f"sample-{index}"
            database = prepare(server, name, folder)
            out = folder / "result.json"
            system = systems.load(name)
            args = ["bench.peers.sample", name, "user", str(folder), str(runs), str(steps), str(out)]
            load = os.getloadavg()[0]
            result = children.run(args, out, children.environment(system.environment(folder)))
            samples[name].append(
                {"seconds": result["seconds"], "points": result["points"], "load": load, "bytes": server.size(database)}
            )
            kept[name] = (folder, result["experiment"], result["run_ids"])
            print(f"{runs}x{steps} {name} sample {index + 1}: {result['seconds']:.2f} s", flush=True)
    return samples, kept


def readers(kept: dict) -> dict:
    from core.postgres_store import PostgresStore

    found = {}
    for name, (folder, experiment, run_ids) in kept.items():
        system = systems.load(name)
        reader = (
            PostgresStore((folder / "store-url").read_text().strip(), folder) if name == "TuneDeck" else system.reader(folder)
        )
        found[name] = (system, reader, experiment, spread(run_ids))
    return found


def queries(stores: dict, runs: int, steps: int, repeat: int) -> dict:
    for name, (system, reader, experiment, history_runs) in stores.items():
        assert system.list_latest(reader, experiment) == runs, name
        assert len(system.filter_order(reader, experiment)) == expected_filtered(runs, steps), name
        assert sum(system.history(reader, run_id) for run_id in history_runs) == steps * len(history_runs), name
    calls = {
        "list": lambda system, reader, experiment, history_runs: system.list_latest(reader, experiment),
        "filter_order": lambda system, reader, experiment, history_runs: system.filter_order(reader, experiment),
        "history": lambda system, reader, experiment, history_runs: [system.history(reader, r) for r in history_runs],
    }
    timings: dict[str, dict[str, list[float]]] = {item: {name: [] for name in stores} for item in QUERIES}
    for item, call in calls.items():
        for index in range(repeat):
            for name in list(stores)[index % 2 :] + list(stores)[: index % 2]:
                call(*stores[name])
                start = time.perf_counter()
                call(*stores[name])
                timings[item][name].append(1000 * (time.perf_counter() - start))
    return timings


def section(options, results: dict, started: str, load: tuple[float, float], versions: str) -> str:
    sizes = (options.runs, options.steps, options.large_runs, options.large_steps)
    command = (
        f"python -m bench.peers.on_postgres --runs {options.runs} --steps {options.steps} --large-runs {options.large_runs} "
        f"--large-steps {options.large_steps} --repeat {options.repeat} --query-repeat {options.query_repeat}"
    )
    lines = [
        HEADING,
        "",
        f"`{command}` ({started}, {versions}; 1-minute load average {load[0]:.1f} before, "
        f"{load[1]:.1f} after, on {os.cpu_count()} CPUs: figures are medians, the ratios matter more than the "
        "absolute times). One private PostgreSQL 15 server (fsync on, default settings) holds both systems' databases, "
        "a fresh database per sample; TuneDeck with `TUNEDECK_STORE_URL`, MLflow with `postgresql+psycopg://`. "
        f"Ingest is the user's path, the clock in each sample's fresh process. The queries run on the last sample's "
        f"databases, in this benchmark's process: TuneDeck through a `PostgresStore` (no read cache), each timed call "
        f"after one untimed warm-up call of its own, the systems taking turns, median of {options.query_repeat}. "
        + (
            "The issue's sizes (200 x 500 and 2,000 x 100)."
            if sizes == ISSUE_SIZES
            else "Reduced sizes: the issue's 200 x 500 and 2,000 x 100 take MLflow hours on this machine."
        ),
        "",
        "| figure | what the clock covers | TuneDeck | MLflow | TuneDeck faster |",
        "|---|---|---|---|---|",
    ]
    for size, figures in results.items():
        ingest, timings = figures["ingest"], figures["queries"]
        t, m = (statistics.median(s["seconds"] for s in ingest[name]) for name in ("TuneDeck", "MLflow"))
        points = ingest["TuneDeck"][0]["points"]
        lines.append(
            f"| user-path ingest {size} | a fresh process creating, logging (4 metrics a step) and completing every run "
            f"through the SDK; median of {len(ingest['TuneDeck'])} | {t:.2f} s ({points / t:,.0f} points/s) | "
            f"{m:.2f} s ({points / m:,.0f} points/s) | {m / t:.1f}x |"
        )
        what = {
            "list": f"one call listing all {figures['runs']} runs with their metrics' last values",
            "filter_order": f"one call: runs with accuracy > 0.5, ordered by eval_loss, of {figures['runs']}",
            "history": f"{HISTORY_CALLS} history calls (every `loss` point of one run each), runs spread over the store",
        }
        for item in QUERIES:
            t, m = (statistics.median(timings[item][name]) for name in ("TuneDeck", "MLflow"))
            lines.append(f"| {item.replace('_', ' + ')} at {size} | {what[item]} | {t:.1f} ms | {m:.1f} ms | {m / t:.1f}x |")
        sizes = {name: statistics.median(s["bytes"] for s in ingest[name]) / 1e6 for name in ("TuneDeck", "MLflow")}
        lines.append(f"| database size {size} | `pg_database_size` | {sizes['TuneDeck']:.1f} MB | {sizes['MLflow']:.1f} MB | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    options = arguments()
    started, load_before = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), os.getloadavg()[0]
    server = Server()
    root = Path(tempfile.mkdtemp(prefix="tunedeck-peers-pg-"))
    results = {}
    try:
        for runs, steps in ((options.runs, options.steps), (options.large_runs, options.large_steps)):
            samples, kept = ingest(server, root, options, runs, steps)
            stores = readers(kept)
            results[f"{runs}x{steps}"] = {
                "runs": runs,
                "ingest": samples,
                "queries": queries(stores, runs, steps, options.query_repeat),
            }
            stores["TuneDeck"][1].close()
    finally:
        server.cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    versions = f"TuneDeck on PostgreSQL 15, MLflow {systems.load('MLflow').version()}"
    text = section(options, results, started, (load_before, os.getloadavg()[0]), versions)
    report.rewrite(options.output, text, HEADING)
    print(text)


if __name__ == "__main__":
    main()
