"""Build a large store quickly for the query and page benchmarks, and reach it as production does.

Seeding writes the tables in bulk with SQL (creating 200,000 runs one transaction at a
time would take longer than the benchmark itself); every measured operation then goes
through the public store API. The rows are shaped exactly as the store writes them:
summaries, best metrics and the experiments' run counters are computed from the rows.

Seeding holds the file in this process (an in-process `DuckDBStore`) and closes it before any
store server starts; the benchmarks then time a `served()` store, the `RemoteStore` that
`open_store()` gives production, and stop its server when done.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core import remote
from core.duckdb_store import DuckDBStore
from core.remote import RemoteStore
from core.sql import first, rows

KEYS = ("loss", "eval_loss", "eval_accuracy", "learning_rate")
SERVER_IDLE_EXIT = 60.0  # seconds; what open_store() uses by default (TUNEDECK_STORE_SERVER_IDLE_EXIT)


def served(path: Path) -> RemoteStore:
    """The store as production opens it: each call is one request to its server, started by the first call."""
    return RemoteStore(path, idle_exit=SERVER_IDLE_EXIT)


def require_server(path: Path, what: str) -> None:
    """Refuse to report figures as the store server's when no server holds the store (it failed to start, say)."""
    if not remote.running(Path(path).resolve()):
        raise RuntimeError(
            f"{what}: no store server runs for {path}, so these figures would not measure the production design "
            "(see the server log in the store's logs folder)"
        )


def stop_server(path: Path) -> None:
    """Stop the store's server, if one runs: it closes the file (checkpointing the WAL into it) and exits."""
    if not remote.stop(Path(path).resolve()):
        raise RuntimeError(f"the store server for {path} did not stop")


@dataclass
class RoundTrips:
    """What a stretch of code asked of the store server: store operations (one request per contract primitive
    called) and round trips (the Flight calls sent for them: more only when a request was sent again, after
    starting a server)."""

    operations: int = 0
    round_trips: int = 0


@contextmanager
def counting_round_trips() -> Iterator[RoundTrips]:
    """Count, in this process and all its threads, the requests every RemoteStore makes and the calls sent for them."""
    counted = RoundTrips()
    request = RemoteStore._request

    def counted_request(self, send, repeatable: bool):
        counted.operations += 1

        def counted_send(client, options):
            counted.round_trips += 1
            return send(client, options)

        return request(self, counted_send, repeatable)

    RemoteStore._request = counted_request
    try:
        yield counted
    finally:
        RemoteStore._request = request


_EXPERIMENTS = """
    INSERT INTO experiments (id, name, dataset, description, status, metric_directions, created_at, updated_at)
    SELECT i, 'experiment ' || i, 'data/sample/sentiment.csv', '', 'completed', '{}',
           TIMESTAMP '2026-01-01' + INTERVAL (i) MINUTE, TIMESTAMP '2026-01-01' + INTERVAL (i) MINUTE
    FROM range(1, ? + 1) t(i)
"""
_RUNS = """
    INSERT INTO runs (id, experiment_id, name, status, config, attempt, worker, created_at, started_at, ended_at, heartbeat_at)
    SELECT r, (r - 1) // ? + 1, 'run-' || ((r - 1) % ? + 1), 'completed',
           '{"learning_rate": ' || (0.001 * (r % 7 + 1)) || ', "lora_rank": ' || (4 * (r % 3 + 1)) || ', "epochs": 3}',
           1, 'bench', TIMESTAMP '2026-01-01' + INTERVAL (r) SECOND, TIMESTAMP '2026-01-01' + INTERVAL (r) SECOND,
           TIMESTAMP '2026-01-01' + INTERVAL (r + 60) SECOND, TIMESTAMP '2026-01-01' + INTERVAL (r + 60) SECOND
    FROM range(1, ? + 1) t(r)
"""
_COUNTERS = """
    UPDATE experiments SET run_count = c.total, completed_runs = c.total
    FROM (SELECT experiment_id, count(*) AS total FROM runs GROUP BY experiment_id) c
    WHERE c.experiment_id = experiments.id
"""
_METRICS = """
    INSERT INTO metrics
    SELECT r.id, k.key, s.step,
           CASE WHEN k.key = 'eval_accuracy' THEN 0.5 + 0.4 * (1 - exp(-s.step / 20.0)) * (0.8 + 0.2 * hash(r.id) % 100 / 100.0)
                WHEN k.key = 'learning_rate' THEN 0.001
                ELSE 2.0 * exp(-s.step / 30.0) + (hash(r.id) % 100) / 1000.0 END,
           TIMESTAMP '2026-01-01' + INTERVAL (r.id) SECOND + INTERVAL (s.step) MILLISECOND
    FROM runs r, (SELECT unnest(?::VARCHAR[]) AS key) k, range(1, ? + 1) s(step)
    ORDER BY r.id, k.key, s.step
"""
_SUMMARIES = """
    INSERT INTO metric_summaries
    SELECT run_id, key, arg_max(value, step), max(step), arg_max(wall_time, step), min(value), max(value), count(*)
    FROM metrics GROUP BY run_id, key
"""
_BEST = """
    INSERT INTO best_metrics
    SELECT r.experiment_id, s.key,
           CASE WHEN s.key = 'eval_accuracy' THEN max(s.last_value) ELSE min(s.last_value) END,
           CASE WHEN s.key = 'eval_accuracy' THEN arg_max(s.run_id, s.last_value) ELSE arg_min(s.run_id, s.last_value) END
    FROM metric_summaries s JOIN runs r ON r.id = s.run_id
    WHERE s.key IN ('loss', 'eval_loss', 'eval_accuracy')
    GROUP BY r.experiment_id, s.key
"""
_COUNTS = "SELECT (SELECT count(*) FROM experiments), (SELECT count(*) FROM runs), (SELECT count(*) FROM metrics)"


def seed_tables(path: Path, experiments: int, runs_per_experiment: int, points_per_run: int) -> tuple[int, int, int]:
    """Write the tables in bulk, each statement one transaction, holding the file in this process, then close it.

    Returns the rows stored: experiments, runs, metric points. Call it before any store server holds the file.
    """
    steps = max(1, points_per_run // len(KEYS))
    total = experiments * runs_per_experiment
    statements = [
        (_EXPERIMENTS, [experiments]),
        (_RUNS, [runs_per_experiment, runs_per_experiment, total]),
        (_COUNTERS, []),
        (_METRICS, [list(KEYS), steps]),
        (_SUMMARIES, []),
        (_BEST, []),
        ("SELECT setval('experiment_ids', ?), setval('run_ids', ?)", [experiments, total]),  # nextval gives the next ID
    ]
    store = DuckDBStore(path)
    try:
        for sql, params in statements:
            store.db.write(lambda con, sql=sql, params=params: rows(con, sql, params))
        with store.reading() as con:
            return first(con, _COUNTS)
    finally:
        store.close()


def build_store(path: Path, experiments: int, runs_per_experiment: int, points_per_run: int) -> RemoteStore:
    """Seed the tables in bulk, then hand back the store as production reaches it (its first call starts a server)."""
    seed_tables(path, experiments, runs_per_experiment, points_per_run)
    return served(path)
