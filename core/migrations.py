"""The schema, as an ordered list of migrations; each runs in a transaction with the record that it ran."""

import duckdb

from core.sql import rows

BEST_TIES_TO_LOWER_RUN_ID = """
        UPDATE best_metrics SET run_id = (
            SELECT min(s.run_id) FROM metric_summaries s JOIN runs r ON r.id = s.run_id
            WHERE r.experiment_id = best_metrics.experiment_id AND s.key = best_metrics.key
              AND r.status = 'completed' AND s.last_value = best_metrics.value
        )
        WHERE EXISTS (
            SELECT 1 FROM metric_summaries s JOIN runs r ON r.id = s.run_id
            WHERE r.experiment_id = best_metrics.experiment_id AND s.key = best_metrics.key
              AND r.status = 'completed' AND s.last_value = best_metrics.value AND s.run_id < best_metrics.run_id
        );
        """  # both backends' migration: standard SQL

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "initial schema",
        """
        CREATE SEQUENCE experiment_ids START 1;
        CREATE SEQUENCE run_ids START 1;
        CREATE SEQUENCE adapter_ids START 1;
        CREATE TABLE experiments (
            id BIGINT PRIMARY KEY,
            name VARCHAR NOT NULL,
            dataset VARCHAR NOT NULL,
            description VARCHAR NOT NULL DEFAULT '',
            status VARCHAR NOT NULL,
            last_error VARCHAR,
            primary_metric VARCHAR,
            metric_directions VARCHAR NOT NULL DEFAULT '{}',
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            deleted_at TIMESTAMP
        );
        CREATE TABLE runs (
            id BIGINT PRIMARY KEY,
            experiment_id BIGINT NOT NULL,
            name VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            config VARCHAR NOT NULL,
            error VARCHAR,
            traceback VARCHAR,
            attempt INTEGER NOT NULL DEFAULT 0,
            worker VARCHAR,
            job_id VARCHAR,
            adapter_id BIGINT,
            created_at TIMESTAMP NOT NULL,
            started_at TIMESTAMP,
            ended_at TIMESTAMP,
            heartbeat_at TIMESTAMP
        );
        CREATE INDEX runs_by_experiment ON runs (experiment_id);
        CREATE TABLE metrics (
            run_id BIGINT NOT NULL,
            key VARCHAR NOT NULL,
            step BIGINT NOT NULL,
            value DOUBLE NOT NULL,
            wall_time TIMESTAMP NOT NULL
        );
        CREATE TABLE metric_summaries (
            run_id BIGINT NOT NULL,
            key VARCHAR NOT NULL,
            last_value DOUBLE NOT NULL,
            last_step BIGINT NOT NULL,
            last_wall_time TIMESTAMP NOT NULL,
            min_value DOUBLE NOT NULL,
            max_value DOUBLE NOT NULL,
            count BIGINT NOT NULL,
            PRIMARY KEY (run_id, key)
        );
        CREATE TABLE best_metrics (
            experiment_id BIGINT NOT NULL,
            key VARCHAR NOT NULL,
            value DOUBLE NOT NULL,
            run_id BIGINT NOT NULL,
            PRIMARY KEY (experiment_id, key)
        );
        CREATE TABLE adapters (
            id BIGINT PRIMARY KEY,
            name VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            path VARCHAR NOT NULL,
            base_model VARCHAR NOT NULL,
            size_bytes BIGINT NOT NULL,
            checksum VARCHAR NOT NULL,
            run_id BIGINT NOT NULL,
            experiment_id BIGINT NOT NULL,
            created_at TIMESTAMP NOT NULL,
            UNIQUE (name, version)
        );
        """,
    ),
    (
        2,
        "experiment run counters, kept per event instead of counted over runs",
        """
        ALTER TABLE experiments ADD COLUMN run_count BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE experiments ADD COLUMN active_runs BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE experiments ADD COLUMN completed_runs BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE experiments ADD COLUMN failed_runs BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE experiments ADD COLUMN cancelled_runs BIGINT NOT NULL DEFAULT 0;
        UPDATE experiments SET
            run_count = c.total, active_runs = c.active, completed_runs = c.completed,
            failed_runs = c.failed, cancelled_runs = c.cancelled
        FROM (
            SELECT experiment_id, count(*) AS total,
                   count(*) FILTER (WHERE status IN ('queued', 'running')) AS active,
                   count(*) FILTER (WHERE status = 'completed') AS completed,
                   count(*) FILTER (WHERE status = 'failed') AS failed,
                   count(*) FILTER (WHERE status = 'cancelled') AS cancelled
            FROM runs GROUP BY experiment_id
        ) c
        WHERE c.experiment_id = experiments.id;
        """,
    ),
    (
        3,
        "tags and notes on experiments and runs",
        """
        CREATE TABLE tags (
            target VARCHAR NOT NULL,
            target_id BIGINT NOT NULL,
            key VARCHAR NOT NULL,
            value VARCHAR NOT NULL,
            PRIMARY KEY (target, target_id, key)
        );
        CREATE TABLE notes (
            target VARCHAR NOT NULL,
            target_id BIGINT NOT NULL,
            body VARCHAR NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            PRIMARY KEY (target, target_id)
        );
        """,
    ),
    (
        4,
        "adapter aliases: a movable name per adapter name (production, candidate) pointing at one version",
        """
        CREATE TABLE adapter_aliases (
            name VARCHAR NOT NULL,
            alias VARCHAR NOT NULL,
            adapter_id BIGINT NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            PRIMARY KEY (name, alias)
        );
        """,
    ),
    (
        5,
        "prediction samples: what a run answered on a fixed set of eval examples, per evaluation step",
        """
        CREATE TABLE samples (
            run_id BIGINT NOT NULL,
            step BIGINT NOT NULL,
            example_id VARCHAR NOT NULL,
            position INTEGER NOT NULL,
            input VARCHAR NOT NULL,
            reference VARCHAR,
            prediction VARCHAR NOT NULL,
            score DOUBLE PRECISION,
            correct BOOLEAN,
            extra VARCHAR NOT NULL DEFAULT '{}',
            logged_at TIMESTAMP NOT NULL,
            PRIMARY KEY (run_id, step, example_id)
        );
        """,
    ),
    (
        6,
        "run logs in the store, so a run's output reaches the app from whichever machine trained it",
        """
        CREATE TABLE run_logs (
            run_id BIGINT NOT NULL,
            seq BIGINT NOT NULL,
            lines BIGINT NOT NULL,
            text VARCHAR NOT NULL,
            PRIMARY KEY (run_id, seq)
        );
        """,
    ),
    (
        7,
        "curve overviews: long series of ended runs kept downsampled, rebuilt from the points (core.overviews)",
        """
        CREATE TABLE metric_overviews (
            run_id BIGINT NOT NULL,
            key VARCHAR NOT NULL,
            count BIGINT NOT NULL,
            last_step BIGINT NOT NULL
        );
        CREATE TABLE overview_points (
            run_id BIGINT NOT NULL,
            key VARCHAR NOT NULL,
            step BIGINT NOT NULL,
            value DOUBLE NOT NULL,
            wall_time TIMESTAMP NOT NULL,
            level INTEGER NOT NULL
        );
        """,
    ),
    (
        8,
        "growing curve overviews: long series of running runs kept downsampled as they grow (core.overviews)",
        """
        CREATE TABLE growing_overviews (
            run_id BIGINT NOT NULL,
            key VARCHAR NOT NULL,
            count BIGINT NOT NULL,
            last_step BIGINT NOT NULL
        );
        CREATE TABLE growing_points (
            run_id BIGINT NOT NULL,
            key VARCHAR NOT NULL,
            step BIGINT NOT NULL,
            value DOUBLE NOT NULL,
            wall_time TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        9,
        "copy marks: what the last `tunedeck store copy` into this store left in its tags, notes and aliases",
        """
        CREATE TABLE copy_marks (
            name VARCHAR PRIMARY KEY,
            rows BIGINT NOT NULL,
            checksum VARCHAR NOT NULL,
            copied_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        10,
        "best metrics: a tie goes to the lower run ID (core.directions.rank), not to the run that completed first",
        BEST_TIES_TO_LOWER_RUN_ID,
    ),
]


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply the migrations this file lacks; running it again changes nothing."""
    rows(
        con,
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT now())",
    )
    done = {row[0] for row in rows(con, "SELECT version FROM schema_migrations")}
    applied = []
    for version, name, sql in MIGRATIONS:
        if version in done:
            continue
        con.begin()
        try:
            rows(con, sql)
            rows(con, "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
            con.commit()
        except BaseException:
            con.rollback()
            raise
        applied.append(version)
    return applied
