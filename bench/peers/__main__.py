"""TuneDeck beside MLflow (and Aim where it finishes in time) on what users do; rewrites `## Peers` in BENCHMARKS.md.

    python -m venv ../venv-bench   # then install as requirements-bench.txt says
    ../venv-bench/bin/python -m bench.peers                               # the issue's sizes (hours: see below)
    ../venv-bench/bin/python -m bench.peers --quick --output /tmp/p.md    # every phase, tiny: ~10 min (29 at load 15)

Phases, in order; every sample in a fresh folder, the systems interleaved sample by sample:
1. run lifecycle: one process alternates TuneDeck and MLflow run by run (`start_run` + 10 steps + end);
2. ingest at --runs x --steps, then at --large-runs x --large-steps: each sample is a fresh process
   doing the user's path (SDK, run by run, runs created and completed inside the clock), with
   TuneDeck's bulk `log_series` path beside it; then the queries on the last sample's stores
   (list, filter+order, 10 history calls, and TuneDeck's one-call history apart);
3. a cold process (fresh interpreter: import, open, one filtered list) on the large store,
   TuneDeck with its store's owner running and not;
4. --processes processes logging at once through `log_series` (TuneDeck only);
5. cProfile of TuneDeck's lifecycle and user path (the client process), for the bounds.

Duration at the default sizes is set by MLflow's user path: 5 samples of 200 x 500 and 5 of
2,000 x 100 are 1.5 million `log_metrics` calls, each its own SQLite transactions (10 to 17 ms
apiece on this 2-CPU machine under another agent's load, 3.4 ms on a quiet one), so 1.5 to 7 hours of MLflow alone; Aim
adds about half an hour (each sample capped by --aim-limit), TuneDeck and the other phases under an
hour with today's code. Run it on a quiet machine; `--quick` checks every phase in minutes.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.peers import children, cold, machine, parallel, report, systems
from bench.peers.machine import LoadMeter
from bench.peers.progress import Progress
from bench.peers.workload import HISTORY_CALLS, KEYS, LIFECYCLE_STEPS, expected_filtered, spread

OUTPUT = Path(__file__).resolve().parents[2] / "BENCHMARKS.md"
QUICK = {
    "runs": 4, "steps": 20, "large_runs": 10, "large_steps": 10, "repeat": 5, "query_repeat": 5,
    "lifecycle_runs": 20, "parallel_runs": 2, "parallel_steps": 200, "settle": 0,
}  # fmt: skip
PROFILED_RUNS = 20


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--large-runs", type=int, default=2000)
    parser.add_argument("--large-steps", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5, help="samples per ingest, cold process and parallel figure")
    parser.add_argument("--query-repeat", type=int, default=15, help="samples per query and system")
    parser.add_argument("--lifecycle-runs", type=int, default=200, help="timed run lifecycles per system")
    parser.add_argument("--processes", type=int, default=8, help="processes logging at once through log_series")
    parser.add_argument("--parallel-runs", type=int, default=50, help="runs per logging process")
    parser.add_argument("--parallel-steps", type=int, default=2500, help="steps per run and key, logging processes")
    parser.add_argument("--peers", default="TuneDeck,MLflow,Aim", help="comma-separated subset of TuneDeck,MLflow,Aim")
    parser.add_argument("--aim-limit", type=float, default=900, help="seconds an Aim sample may take before Aim is dropped")
    parser.add_argument("--settle", type=float, default=60, help="first wait up to this long for a quiet machine")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of every phase")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the Markdown file whose `## Peers` is rewritten")
    parser.add_argument("--json", type=Path, help="also keep the raw samples here")
    options = parser.parse_args()
    if options.quick:
        for name, value in QUICK.items():
            setattr(options, name, value)
    options.peers = [name for name in options.peers.split(",") if name]
    if "TuneDeck" not in options.peers or set(options.peers) - set(systems.MODULES):
        parser.error(f"--peers must include TuneDeck and name only {', '.join(systems.MODULES)}")
    return options


def settle(limit: float, quiet: float = 0.5) -> float:
    """Wait (up to `limit` seconds) for the 1-minute load average to drop below `quiet`; returns the wait."""
    start = time.monotonic()
    while os.getloadavg()[0] >= quiet and time.monotonic() - start < limit:
        time.sleep(2)
    return time.monotonic() - start


def sizes(options) -> list[tuple[str, int, int]]:
    return [
        (f"{runs}x{steps}", runs, steps)
        for runs, steps in ((options.runs, options.steps), (options.large_runs, options.large_steps))
    ]


def ingest_labels(options) -> list[tuple[str, str, str]]:
    """(label, system, mode) in the order each round of samples runs them."""
    labels = [("TuneDeck", "TuneDeck", "user"), (systems.BULK, "TuneDeck", "bulk")]
    return labels + [(name, name, "user") for name in options.peers if name != "TuneDeck"]


def query_items(options) -> list[str]:
    return ["list", "filter_order", "history", "history_one_call"]


def planned(options) -> int:
    per_size = options.repeat * len(ingest_labels(options)) + len(query_items(options))
    return 1 + 2 * per_size + (options.repeat + 1) + options.repeat + 2


class Bench:
    """One measurement: its scratch folder, its progress bar, and every figure taken so far."""

    def __init__(self, options, root: Path):
        self.options, self.root = options, root
        self.progress = Progress(planned(options))
        self.results = {"ingest": {}, "queries": {}, "cold": {}, "parallel": [], "profiles": {}}
        self.kept: dict[str, dict[str, tuple[Path, object, list]]] = {}  # size -> system -> (folder, experiment, runs)

    def folder(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True)
        return path

    def lifecycle(self) -> None:
        self.progress.start("run lifecycle")
        names = [name for name in ("TuneDeck", "MLflow") if name in self.options.peers]
        pairs = [f"{name}={self.folder('lifecycle', name)}" for name in names]
        meter, out = LoadMeter(str(self.root)), self.root / "lifecycle.json"
        args = ["bench.peers.lifecycle", str(out), str(self.options.lifecycle_runs), *pairs]
        samples = children.run(args, out, children.environment({}), self.progress)
        self.stop_owners("lifecycle")
        self.results["lifecycle"] = {"samples_ms": samples, "load": meter.read()}
        self.progress.advance()
        self.progress.message("lifecycle: " + ", ".join(f"{name} {statistics.median(ms):.1f} ms" for name, ms in samples.items()))

    def ingest(self, size: str, runs: int, steps: int) -> None:
        figures = self.results["ingest"][size] = {"runs": runs, "steps": steps, "samples": {}, "timed_out": {}}
        self.kept[size] = {}
        for index in range(self.options.repeat):
            for label, name, mode in ingest_labels(self.options):
                self.progress.start(f"ingest {size} sample {index + 1}/{self.options.repeat}: {label}")
                if label not in figures["timed_out"]:
                    self.ingest_sample(figures, size, index, label, name, mode)
                self.progress.advance()
        medians = {label: statistics.median(s["seconds"] for s in got) for label, got in figures["samples"].items() if got}
        self.progress.message(f"ingest {size}: " + ", ".join(f"{label} {s:.2f} s" for label, s in medians.items()))

    def ingest_sample(self, figures: dict, size: str, index: int, label: str, name: str, mode: str) -> None:
        system, runs, steps = systems.load(name), figures["runs"], figures["steps"]
        folder, out = self.folder(size, label, f"sample-{index}"), self.root / size / label / f"sample-{index}.json"
        limit = self.options.aim_limit if name == "Aim" else None
        args = ["bench.peers.sample", name, mode, str(folder), str(runs), str(steps), str(out)]
        meter = LoadMeter(str(self.root))
        try:
            result = children.run(args, out, children.environment(system.environment(folder)), self.progress, limit)
        except children.TimedOut:
            figures["timed_out"][label] = limit
            shutil.rmtree(folder, ignore_errors=True)
            return
        sample = {"seconds": result["seconds"], "points": result["points"], **meter.read(), "bytes": system.size(folder)}
        figures["samples"].setdefault(label, []).append(sample)
        if mode != "user":
            shutil.rmtree(folder)
            return
        previous = self.kept[size].get(name)
        if previous:
            shutil.rmtree(previous[0])
        self.kept[size][name] = (folder, result["experiment"], result["run_ids"])

    def queries(self, size: str, runs: int, steps: int) -> None:
        stores, figures = {}, {"ready_s": {}, "calls": {}}
        for name, (folder, experiment, run_ids) in self.kept[size].items():
            system = systems.load(name)
            figures["ready_s"][name] = system.ready(folder, run_ids)
            stores[name] = (system, system.reader(folder), experiment, spread(run_ids))
            check(name, stores[name], runs, steps)
        for item in query_items(self.options):
            self.progress.start(f"queries {size}: {item}")
            figures["calls"][item] = self.time_query(item, stores)
            self.progress.advance()
        self.results["queries"][size] = figures
        self.stop_owners(size)  # idle owners are processes too: none runs but the one a phase needs
        self.progress.message(
            f"queries {size}: "
            + "; ".join(
                f"{item} " + ", ".join(f"{name} {statistics.median(s['ms'] for s in got):.1f} ms" for name, got in by.items())
                for item, by in figures["calls"].items()
            )
        )

    def time_query(self, item: str, stores: dict) -> dict:
        """Rounds of: each system (the first rotating) makes one warm-up call, then the timed one."""
        calls = {name: query_call(item, *store) for name, store in stores.items()}
        calls = {name: call for name, call in calls.items() if call is not None}
        samples, order = {name: [] for name in calls}, list(calls)
        for index in range(self.options.query_repeat):
            for name in order[index % len(order) :] + order[: index % len(order)]:
                calls[name]()
                start = time.perf_counter()
                calls[name]()
                samples[name].append({"ms": 1000 * (time.perf_counter() - start), "load": os.getloadavg()[0]})
            self.progress.step(index + 1, self.options.query_repeat)
        return samples

    def cold(self, size: str) -> None:
        """Interleaved rounds after one warm-up round; TuneDeck's owner is stopped or left running just before."""
        peers = [(name, name, None) for name in self.kept[size] if name != "TuneDeck"]
        plan = [(report.OWNER_STOPPED, "TuneDeck", False), *peers[:1], (report.OWNER_RUNNING, "TuneDeck", True), *peers[1:]]
        for index in range(self.options.repeat + 1):
            self.progress.start(f"cold process {'warm-up' if index == 0 else index}/{self.options.repeat}")
            for label, name, owner in plan:
                folder, experiment, _ = self.kept[size][name]
                system = systems.load(name)
                if owner is not None:
                    (system.start_owner(folder, children.ROOT) if owner else system.stop_owner(folder))
                load = os.getloadavg()[0]
                sample = cold.sample(system, folder, experiment, self.root / "bytecode") | {"load": load}
                if index:
                    self.results["cold"].setdefault(label, []).append(sample)
            self.progress.advance()
        self.results["cold_store"] = size
        self.progress.message(
            "cold: "
            + ", ".join(
                f"{label} {statistics.median(s['wall_ms'] for s in got):.0f} ms" for label, got in self.results["cold"].items()
            )
        )

    def parallel(self) -> None:
        options = self.options
        for index in range(options.repeat):
            self.progress.start(f"{options.processes} processes logging, sample {index + 1}/{options.repeat}")
            folder = self.root / "parallel" / f"sample-{index}"
            meter = LoadMeter(str(self.root))
            sample = parallel.sample(folder, options.processes, options.parallel_runs, options.parallel_steps)
            self.results["parallel"].append(sample | meter.read())
            systems.load("TuneDeck").stop_owner(folder)
            shutil.rmtree(folder)
            self.progress.advance()
        rates = [sample["points_per_s"] for sample in self.results["parallel"]]
        self.progress.message(f"{options.processes} processes: {statistics.median(rates):,.0f} points/s")

    def profiles(self) -> None:
        """cProfile of TuneDeck's client process: a lifecycle's worth of runs, and the user path at the small size."""
        runs, steps = min(PROFILED_RUNS, self.options.runs), self.options.steps
        for name, (count, length) in {"lifecycle": (50, LIFECYCLE_STEPS), "user_path": (runs, steps)}.items():
            self.progress.start(f"profile: TuneDeck {name}")
            folder, out = self.folder("profiles", name), self.root / "profiles" / f"{name}.json"
            args = ["bench.peers.sample", "TuneDeck", "user", str(folder), str(count), str(length), str(out), "--profile"]
            result = children.run(args, out, children.environment(systems.load("TuneDeck").environment(folder)), self.progress)
            self.results["profiles"][name] = {
                "runs": count,
                "steps": length,
                "seconds": result["seconds"],
                "text": result["profile"],
            }
            self.progress.advance()

    def stop_owners(self, under: str = ".") -> None:
        tunedeck = systems.load("TuneDeck")
        for store in (self.root / under).rglob(tunedeck.STORE_FILE):
            tunedeck.stop_owner(store.parent)

    def close(self) -> None:
        """Stop every store owner this run started, so none outlives its folder."""
        self.stop_owners()
        self.progress.close()


def query_call(item: str, system, reader, experiment, history_runs: list):
    """The call one timed sample makes, or None where the system has no such call."""
    if item == "list":
        return lambda: system.list_latest(reader, experiment)
    if item == "filter_order":
        return lambda: system.filter_order(reader, experiment)
    if item == "history":
        return lambda: [system.history(reader, run_id) for run_id in history_runs]
    if item == "history_one_call" and hasattr(system, "history_one_call"):
        return lambda: system.history_one_call(reader, history_runs)
    return None


def check(name: str, store: tuple, runs: int, steps: int) -> None:
    """Every system must hold and return the same runs and points, or the timings compare nothing."""
    system, reader, experiment, history_runs = store
    found = {
        "runs listed": (system.list_latest(reader, experiment), runs),
        "runs filtered": (len(system.filter_order(reader, experiment)), expected_filtered(runs, steps)),
        "history points": (sum(system.history(reader, run_id) for run_id in history_runs), steps * len(history_runs)),
    }
    if hasattr(system, "point_counts"):
        found["points stored"] = (sum(system.point_counts(reader, experiment)), runs * steps * len(KEYS))
    wrong = [f"{what}: {got}, expected {expected}" for what, (got, expected) in found.items() if got != expected]
    if wrong:
        raise SystemExit(f"{name}: " + "; ".join(wrong))


def versions(options) -> dict:
    found = machine.describe()
    for name in options.peers:
        found[name] = systems.load(name).version()
    return found


def main() -> None:
    options = arguments()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed run still stops its owners and removes its folders
    os.environ["TUNEDECK_STORE_SERVER_IDLE_EXIT"] = "3600"  # the owners this process starts outlive a slow peer's turn
    os.environ["TUNEDECK_READ_CACHE_MB"] = "0"  # and read every time, as the peers do: no answers kept in memory
    waited = settle(options.settle)
    started, clock, load_before = datetime.now(UTC), time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tunedeck-peers-") as scratch:
        bench = Bench(options, Path(scratch))
        try:
            bench.lifecycle()
            for size, runs, steps in sizes(options):
                bench.ingest(size, runs, steps)
                bench.queries(size, runs, steps)
            bench.cold(sizes(options)[-1][0])
            bench.parallel()
            bench.profiles()
        finally:
            bench.close()
    run = {
        "command": " ".join(["python -m bench.peers", *sys.argv[1:]]),
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": time.perf_counter() - clock,
        "load": (load_before, os.getloadavg()[0]),
        "settled_s": waited,
        "machine": versions(options),
        "options": {key: str(value) if isinstance(value, Path) else value for key, value in vars(options).items()},
        "history_calls": HISTORY_CALLS,
        **bench.results,
    }
    if options.json:
        options.json.write_text(json.dumps(run, indent=1))
    text = report.section(run)
    report.rewrite(options.output, text)
    print(text)
    print(f"rewrote the Peers section of {options.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
