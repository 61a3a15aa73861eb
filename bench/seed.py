"""Build a large store quickly for the query benchmarks.

Seeding writes the tables in bulk with SQL (creating 200,000 runs one transaction at a
time would take longer than the benchmark itself); every measured operation then goes
through the public store API. The rows are shaped exactly as the store writes them:
summaries and best metrics are computed from the points.
"""

from pathlib import Path

from core.db import connect
from core.duckdb_store import DuckDBStore
from core.sql import rows

KEYS = ("loss", "eval_loss", "eval_accuracy", "learning_rate")


def build_store(path: Path, experiments: int, runs_per_experiment: int, points_per_run: int) -> DuckDBStore:
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
