"""What one history call costs beside what no design with one request per call can go below: the floor behind
issue #12's "10 history calls >= 30x MLflow" and #13's ">= 10x" on PostgreSQL.

    python -m bench.history_floor                  # 200 runs x 100 steps and 20 x 500, under a minute
    python -m bench.history_floor --postgres       # the same in a private PostgreSQL server (Debian's binaries)

A store of the size is built in bulk (`MetricWriter.log_series`, untimed), then rounds of 10 calls (runs spread
evenly over the store, each call one run's `loss`) take turns; each figure is the median over the rounds of a
round's time per call:

- **history call**: `get_metric_series([run], ["loss"], max_points=None)` through the SDK, the owner running (for
  PostgreSQL, the team-mode store in this process);
- **the store alone** (embedded only): the same call on a `DuckDBStore` opened in this process on a copy of the file
  (no transport, no owner in between);
- **its statement alone**: the call's SQL (`whole_series_query`) into a Polars frame on that store's connection
  (PostgreSQL: its statement's answer, an ended run's sealed curve as one value (core.pg_curves), fetched, before it
  becomes a frame);
- **least statement**: `SELECT 1` into a Polars frame on that DuckDB connection (psycopg: `SELECT 1`, fetched);
- **bare round trip** (embedded only): a do_get of a 3-row table from an Arrow Flight server doing nothing else, on
  a Unix socket, in a child process.

A design where each call is one request to the store's owner pays at least the bare round trip plus the least
statement, which is printed as the floor; against a peer's call (MLflow's, in `bench.peers`), 10 calls cannot be
faster than 10 floors.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.peers import tunedeck
from bench.peers.workload import curves, spread

ROUNDS = 30
SIZES = ((200, 100), (20, 500))


def per_call(cases: dict[str, Callable[[int], object]], run_ids: list[int]) -> dict[str, float]:
    """Median ms per call of each case, the cases taking turns round by round (one warm-up round first)."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(ROUNDS + 1):
        for name, call in cases.items():
            start = time.perf_counter()
            for run_id in run_ids:
                call(run_id)
            if round_:
                samples[name].append((time.perf_counter() - start) * 1000 / len(run_ids))
    return {name: statistics.median(values) for name, values in samples.items()}


def embedded(folder: Path, run_ids: list[int]) -> dict[str, float]:
    """The SDK's call beside its parts: the store opened in this process on a copy of the file (taken with the owner
    stopped, so the file is whole), DuckDB's own statements on that connection, and a bare Flight round trip."""
    import pyarrow.flight as flight

    from core.duckdb_store import DuckDBStore, whole_series_query
    from core.sql import frame

    tunedeck.stop_owner(folder)  # folds in its write-ahead log; the first call below starts it again
    copy = folder.parent / f"{folder.name}-copy"
    copy.mkdir()
    shutil.copy(folder / tunedeck.STORE_FILE, copy / tunedeck.STORE_FILE)
    store, alone = tunedeck.reader(folder), DuckDBStore(copy / tunedeck.STORE_FILE)
    socket = folder.parent / "bare.sock"
    server = subprocess.Popen([sys.executable, "-m", "bench.history_floor", "--bare-server", str(socket)])
    try:
        client, ticket = flight.FlightClient(f"grpc+unix://{socket}"), flight.Ticket(b"")
        wait_for(server, client, ticket)
        with alone.db.reader() as con:
            return per_call(
                {
                    "history call": lambda run_id: store.get_metric_series([run_id], ["loss"], max_points=None),
                    "the store alone": lambda run_id: alone.get_metric_series([run_id], ["loss"], max_points=None),
                    "its statement alone": lambda run_id: frame(con, *whole_series_query([run_id], ["loss"])),
                    "least statement": lambda _: con.sql("SELECT 1").pl(),
                    "bare round trip": lambda _: client.do_get(ticket).read_all(),
                },
                run_ids,
            )
    finally:
        server.terminate()
        server.wait()
        alone.close()


def wait_for(server: subprocess.Popen, client, ticket, timeout: float = 30.0) -> None:
    """Until the bare server answers; it runs in a child process so that its work is not this process's."""
    import pyarrow.flight as flight

    deadline = time.monotonic() + timeout
    while True:
        try:
            client.do_get(ticket).read_all()
            return
        except flight.FlightUnavailableError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bare Flight server did not start") from None
            time.sleep(0.05)


def on_postgres(folder: Path, run_ids: list[int], url: str) -> dict[str, float]:
    """The SDK's call (the team-mode store in this process) beside its statement's answer and the least statement, on
    a connection of their own (a binary cursor as the store's, prepared as the store's are after a few uses)."""
    import psycopg

    from core.pg_curves import SEALED_CURVE

    store = tunedeck.reader(folder)
    with psycopg.connect(url, autocommit=True) as con, con.cursor(binary=True) as cursor:
        return per_call(
            {
                "history call": lambda run_id: store.get_metric_series([run_id], ["loss"], max_points=None),
                "its statement alone": lambda run_id: cursor.execute(SEALED_CURVE, {"run": run_id, "key": "loss"}).fetchone(),
                "least statement": lambda _: cursor.execute("SELECT 1").fetchall(),
            },
            run_ids,
        )


def bare_server(socket: str) -> None:
    """An Arrow Flight server that answers every do_get with the same 3-row table: what a round trip costs alone."""
    import pyarrow as pa
    import pyarrow.flight as flight

    table = pa.table({"a": [1, 2, 3]})

    class Bare(flight.FlightServerBase):
        def do_get(self, context, ticket):
            return flight.RecordBatchStream(table)

    Bare(f"grpc+unix://{socket}").serve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", action="store_true", help="the team-mode store in a private PostgreSQL server")
    parser.add_argument("--bare-server", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.bare_server:
        return bare_server(options.bare_server)
    server = None
    if options.postgres:
        from bench.peers.on_postgres import Server  # a private PostgreSQL server, fsync on, a database per store

        server = Server()
    os.environ.pop("TUNEDECK_STORE_URL", None)  # the embedded store unless --postgres, whatever the shell says
    root = Path(tempfile.mkdtemp(prefix="tunedeck-history-floor-"))
    try:
        print(
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start; ms per call (median of {ROUNDS} rounds)"
        )
        for runs, steps in SIZES:
            folder = root / f"{runs}x{steps}"
            folder.mkdir()
            url = server and server.cluster.database_url(server.database("TuneDeck"))
            if url:
                (folder / "store-url").write_text(url)
            os.environ.update(tunedeck.environment(folder))
            experiment = tunedeck.setup(folder)
            run_ids = spread(tunedeck.bulk(folder, experiment, [curves(i, steps) for i in range(runs)], lambda _: None))
            figures = on_postgres(folder, run_ids, url) if url else embedded(folder, run_ids)
            floor = figures["least statement"] + figures.get("bare round trip", 0.0)
            print(f"{runs} runs x {steps} steps: " + ", ".join(f"{name} {ms:.3f}" for name, ms in figures.items()))
            print(f"  one request per call costs at least {floor:.3f} ms (the least statement, and embedded the bare round trip)")
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
    finally:
        if server is None:
            for folder in root.glob("*x*"):
                if not folder.name.endswith("-copy"):
                    tunedeck.stop_owner(folder)  # no-op where none runs
        else:
            server.cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
