"""Serving a team from one server: page views per second with N clients, without a browser.

    python -m bench.load                       # 5 clients for 60 s on 3 experiments x 20 runs x 2,000 steps
    python -m bench.load --clients 5 --seconds 20 --url http://localhost:8501   # against a running app

Each client does what a browser's first visit does, over and over: it opens a websocket session at
/_stcore/stream, asks for one page (a rerun with the page's name and query string), reads every
message until the script has finished, and closes. A page view's time is from connecting to that
last message; its size is the bytes the server sent. Pages go round: experiments list, each
experiment, a 20-run compare, a run page. Without --url the app is started with the project's
.streamlit/config.toml (production settings), its worker off, on a freshly seeded store, and the
server's memory (resident set) is sampled while the load runs.
"""

import argparse
import asyncio
import itertools
import math
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from core import open_store
from core.writer import MetricWriter

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = str(ROOT / "data" / "sample" / "sentiment.csv")
EXPERIMENTS, RUNS, STEPS = 3, 20, 2_000
TARGET_VIEWS_PER_SECOND = 10.0
TARGET_P95_S = 1.0
TARGET_BYTES = 300_000


@dataclass
class View:
    page: str
    seconds: float
    bytes: int


@dataclass
class LoadResult:
    clients: int
    seconds: float
    views: list[View] = field(default_factory=list)
    errors: int = 0
    rss_mb: list[float] = field(default_factory=list)

    @property
    def views_per_second(self) -> float:
        return len(self.views) / self.seconds

    def p(self, quantile: float, page: str | None = None) -> float:
        times = sorted(v.seconds for v in self.views if page in (None, v.page))
        return times[min(len(times) - 1, math.ceil(quantile * len(times)) - 1)] if times else float("nan")

    def bytes_of(self, page: str) -> int:
        sizes = [v.bytes for v in self.views if v.page == page]
        return int(statistics.median(sizes)) if sizes else 0


def seed(data_dir: Path, experiments: int = EXPERIMENTS, runs: int = RUNS, steps: int = STEPS) -> dict[str, list[int]]:
    """The issue's team: experiments of completed runs logging loss, learning rate, throughput and evals."""
    store = open_store(data_dir)
    rng = np.random.default_rng(0)
    step = np.arange(1, steps + 1)
    ids: dict[str, list[int]] = {"experiments": [], "runs": []}
    for index in range(experiments):
        experiment_id = store.create_experiment({"name": f"team experiment {index + 1}", "dataset": SAMPLE})
        run_ids = [store.create_run(experiment_id, {"learning_rate": 1e-3 * (r + 1), "epochs": 1}) for r in range(runs)]
        with MetricWriter(store) as writer:
            for run_id in run_ids:
                writer.log_series(run_id, "loss", step, 2.0 / np.sqrt(step) + rng.normal(0, 0.02, steps) + 0.1)
                writer.log_series(run_id, "learning_rate", step, 1e-3 * (1 - step / steps))
                writer.log_series(run_id, "samples_per_second", step, 900 + rng.normal(0, 100, steps))
                writer.log_series(run_id, "eval_loss", step[::100], 1.0 / np.sqrt(step[::100]))
        for run_id in run_ids:
            store.mark_running(run_id, worker="bench:1")
            store.complete_run(run_id)
        ids["experiments"].append(experiment_id)
        ids["runs"].extend(run_ids)
    return ids


def pages(ids: dict[str, list[int]]) -> list[tuple[str, str]]:
    """(page name, query string) in the order clients visit them."""
    compare = ",".join(map(str, ids["runs"][:RUNS]))
    return [
        ("experiments", ""),
        *[("experiment", f"experiment={experiment_id}") for experiment_id in ids["experiments"]],
        ("compare", f"runs={compare}"),
        ("run", f"run={ids['runs'][0]}"),
    ]


async def view(url: str, page: str, query: str) -> View:
    """One first visit of a page: a new session, one script run, every message until it has finished."""
    started = time.perf_counter()
    received = 0
    async with websockets.connect(
        f"{url.replace('http', 'ws', 1)}/_stcore/stream", subprotocols=["streamlit"], max_size=None
    ) as socket:
        message = BackMsg()
        message.rerun_script.query_string = query
        message.rerun_script.page_name = page
        await socket.send(message.SerializeToString())
        while True:
            raw = await socket.recv()
            received += len(raw)
            forward = ForwardMsg.FromString(raw)
            if forward.WhichOneof("type") == "script_finished":
                break
    return View(page, time.perf_counter() - started, received)


async def client(url: str, order: list[tuple[str, str]], deadline: float, result: LoadResult, offset: int) -> None:
    for page, query in itertools.islice(itertools.cycle(order), offset, None):
        if time.perf_counter() > deadline:
            return
        try:
            result.views.append(await view(url, page, query))
        except (OSError, websockets.WebSocketException):
            result.errors += 1


async def sample_memory(pid: int | None, deadline: float, result: LoadResult) -> None:
    while pid is not None and time.perf_counter() < deadline:
        result.rss_mb.append(resident_mb(pid))
        await asyncio.sleep(1)


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def load(url: str, order: list[tuple[str, str]], clients: int, seconds: float, pid: int | None) -> LoadResult:
    for page, query in order:  # warm up: imports, caches, the store server
        await view(url, page, query)
    result = LoadResult(clients=clients, seconds=seconds)
    deadline = time.perf_counter() + seconds
    tasks = [client(url, order, deadline, result, offset) for offset in range(clients)]
    await asyncio.gather(*tasks, sample_memory(pid, deadline, result))
    result.seconds = seconds + max(0.0, time.perf_counter() - deadline)
    return result


def report(result: LoadResult, order: list[tuple[str, str]]) -> str:
    lines = [
        f"{result.clients} clients, {result.seconds:.0f} s: {len(result.views)} page views, "
        f"{result.views_per_second:.1f} views/s (target >= {TARGET_VIEWS_PER_SECOND:.0f}), "
        f"p50 {result.p(0.5):.2f} s, p95 {result.p(0.95):.2f} s (target <= {TARGET_P95_S:.0f} s), {result.errors} errors",
    ]
    if result.rss_mb:
        lines.append(f"server memory: {min(result.rss_mb):.0f} to {max(result.rss_mb):.0f} MB resident")
    for page in dict.fromkeys(name for name, _ in order):
        lines.append(
            f"  {page:12s} p50 {result.p(0.5, page):.2f} s  p95 {result.p(0.95, page):.2f} s  "
            f"{result.bytes_of(page) / 1000:.0f} KB per view (target <= {TARGET_BYTES / 1000:.0f} KB)"
        )
    return "\n".join(lines)


def serve(data_dir: Path):
    from tests.servers import start_app

    return start_app(data_dir / "streamlit.log", TUNEDECK_DATA_DIR=str(data_dir), TUNEDECK_EMBEDDED_WORKER="0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--url", help="an app already running on a store seeded by this module (ids are looked up)")
    arguments = parser.parse_args()
    random.seed(0)
    if arguments.url:
        store = open_store()
        experiments = [e.id for e in store.list_experiments(page_size=EXPERIMENTS).items]
        ids = {"experiments": experiments, "runs": [run.id for run in store.list_runs(experiments[0])]}
        result = asyncio.run(load(arguments.url.rstrip("/"), pages(ids), arguments.clients, arguments.seconds, None))
        print(report(result, pages(ids)))
        return
    from tests.servers import stop

    with tempfile.TemporaryDirectory(prefix="tunedeck-load-") as folder:
        data_dir = Path(folder)
        started = time.perf_counter()
        ids = seed(data_dir)
        print(f"seeded {EXPERIMENTS} x {RUNS} runs x {STEPS:,} steps in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        process, url = serve(data_dir)
        try:
            order = pages(ids)
            result = asyncio.run(load(url, order, arguments.clients, arguments.seconds, process.pid))
        finally:
            stop(process)
    print(report(result, order))


if __name__ == "__main__":
    main()
