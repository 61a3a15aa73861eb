"""Build a large store quickly for the query benchmarks.

Seeding writes the tables in bulk with SQL (creating 200,000 runs one transaction at a
time would take longer than the benchmark itself); every measured operation then goes
through the public store API. The rows are shaped exactly as the store writes them:
summaries and best metrics are computed from the points.

Seeding opens the file directly (no store server runs yet); the benchmarks then time a
`served()` store, as `open_store()` gives production, and stop its server when done.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core import remote
from core.db import connect
from core.duckdb_store import DuckDBStore
from core.remote import RemoteConnection
from core.sql import rows

KEYS = ("loss", "eval_loss", "eval_accuracy", "learning_rate")
SERVER_IDLE_EXIT = 60.0  # seconds; what open_store() uses by default (TUNEDECK_STORE_SERVER_IDLE_EXIT)


def served(path: Path, kind: type[DuckDBStore] = DuckDBStore) -> DuckDBStore:
    """The store as production opens it: its first call starts the store server when none runs."""
    return kind(path, server_idle_exit=SERVER_IDLE_EXIT)


def require_server(path: Path, what: str) -> None:
    """Refuse to report figures as the store server's when no server held the file (it failed to start, say)."""
    if not remote.running(Path(path).resolve()):
        raise RuntimeError(
            f"{what}: no store server runs for {path}, so the calls opened the file directly; "
            "these figures would not measure the production design (see the server log in the store's logs folder)"
        )


def stop_server(path: Path) -> None:
    """Stop the store's server, if one runs: it closes the file (checkpointing the WAL into it) and exits."""
    if not remote.stop(Path(path).resolve()):
        raise RuntimeError(f"the store server for {path} did not stop")


@dataclass
class RoundTrips:
    """What a stretch of code asked of the store server: operations (one socket connection each) and round trips."""

    operations: int = 0
    round_trips: int = 0


@contextmanager
def counting_round_trips() -> Iterator[RoundTrips]:
    """Count, in this process and all its threads, the store server connections made and the requests sent on them."""
    counted = RoundTrips()
    call, connect_to = RemoteConnection.call, remote.connect

    def counted_call(self, *request):
        counted.round_trips += 1
        return call(self, *request)

    def counted_connect(*args, **kwargs):
        found = connect_to(*args, **kwargs)
        counted.operations += found is not None
        return found

    RemoteConnection.call, remote.connect = counted_call, counted_connect
    try:
        yield counted
    finally:
        RemoteConnection.call, remote.connect = call, connect_to


def build_store(path: Path, experiments: int, runs_per_experiment: int, points_per_run: int) -> DuckDBStore:
    """Seed the tables in bulk; returns a plain store (it uses a running server, but never starts one)."""
    store = DuckDBStore(path)
    steps = max(1, points_per_run // len(KEYS))
    with connect(path) as con:
        rows(
            con,
            """
            INSERT INTO experiments (id, name, dataset, description, status, metric_directions, created_at, updated_at)
            SELECT i, 'experiment ' || i, 'data/sample/sentiment.csv', '', 'completed', '{}',
                   TIMESTAMP '2026-01-01' + INTERVAL (i) MINUTE, TIMESTAMP '2026-01-01' + INTERVAL (i) MINUTE
            FROM range(1, ? + 1) t(i)
            """,
            [experiments],
        )
        rows(
            con,
            """
            INSERT INTO runs (id, experiment_id, name, status, config, attempt, worker, created_at, started_at, ended_at, heartbeat_at)
            SELECT r, (r - 1) // ? + 1, 'run-' || ((r - 1) % ? + 1), 'completed',
                   '{"learning_rate": ' || (0.001 * (r % 7 + 1)) || ', "lora_rank": ' || (4 * (r % 3 + 1)) || ', "epochs": 3}',
                   1, 'bench', TIMESTAMP '2026-01-01' + INTERVAL (r) SECOND, TIMESTAMP '2026-01-01' + INTERVAL (r) SECOND,
                   TIMESTAMP '2026-01-01' + INTERVAL (r + 60) SECOND, TIMESTAMP '2026-01-01' + INTERVAL (r + 60) SECOND
            FROM range(1, ? + 1) t(r)
            """,
            [runs_per_experiment, runs_per_experiment, experiments * runs_per_experiment],
        )
        rows(
            con,
            """
            INSERT INTO metrics
            SELECT r.id, k.key, s.step,
                   CASE WHEN k.key = 'eval_accuracy' THEN 0.5 + 0.4 * (1 - exp(-s.step / 20.0)) * (0.8 + 0.2 * hash(r.id) % 100 / 100.0)
                        WHEN k.key = 'learning_rate' THEN 0.001
                        ELSE 2.0 * exp(-s.step / 30.0) + (hash(r.id) % 100) / 1000.0 END,
                   TIMESTAMP '2026-01-01' + INTERVAL (r.id) SECOND + INTERVAL (s.step) MILLISECOND
            FROM runs r, (SELECT unnest(?::VARCHAR[]) AS key) k, range(1, ? + 1) s(step)
            ORDER BY r.id, k.key, s.step
            """,
            [list(KEYS), steps],
        )
        rows(
            con,
            """
            INSERT INTO metric_summaries
            SELECT run_id, key, arg_max(value, step), max(step), arg_max(wall_time, step), min(value), max(value), count(*)
            FROM metrics GROUP BY run_id, key
            """,
        )
        rows(
            con,
            """
            INSERT INTO best_metrics
            SELECT r.experiment_id, s.key,
                   CASE WHEN s.key = 'eval_accuracy' THEN max(s.last_value) ELSE min(s.last_value) END,
                   CASE WHEN s.key = 'eval_accuracy' THEN arg_max(s.run_id, s.last_value) ELSE arg_min(s.run_id, s.last_value) END
            FROM metric_summaries s JOIN runs r ON r.id = s.run_id
            WHERE s.key IN ('loss', 'eval_loss', 'eval_accuracy')
            GROUP BY r.experiment_id, s.key
            """,
        )
        total = experiments * runs_per_experiment
        rows(con, f"SELECT setval('experiment_ids', {experiments + 1}), setval('run_ids', {total + 1})")
    return store
