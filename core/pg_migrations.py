"""The PostgreSQL schema, as an ordered list of migrations like core.migrations' (same tables, same column names).

Two small SQL functions give PostgreSQL DuckDB's `list_contains` and `contains`, so statements written for the
embedded store run here unchanged (see core.pg_connection for the few that need other wording).
"""

import psycopg

from core.migrations import BEST_TIES_TO_LOWER_RUN_ID

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "initial schema, with the run counters of the embedded store's migration 2",
        """
        CREATE FUNCTION list_contains(list anycompatiblearray, item anycompatible) RETURNS boolean
            LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT item = ANY(list)';
        CREATE FUNCTION contains(haystack text, needle text) RETURNS boolean
            LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT strpos(haystack, needle) > 0';
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
            deleted_at TIMESTAMP,
            run_count BIGINT NOT NULL DEFAULT 0,
            active_runs BIGINT NOT NULL DEFAULT 0,
            completed_runs BIGINT NOT NULL DEFAULT 0,
            failed_runs BIGINT NOT NULL DEFAULT 0,
            cancelled_runs BIGINT NOT NULL DEFAULT 0
        );
        -- Names are unique among live experiments: the check in the store, and this for writers racing it.
        CREATE UNIQUE INDEX experiments_live_name ON experiments (name) WHERE deleted_at IS NULL;
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
        CREATE INDEX runs_by_status ON runs (status);
        CREATE TABLE metrics (
            run_id BIGINT NOT NULL,
            key VARCHAR NOT NULL,
            step BIGINT NOT NULL,
            value DOUBLE PRECISION NOT NULL,
            wall_time TIMESTAMP NOT NULL,
            PRIMARY KEY (run_id, key, step)
        );
        CREATE TABLE metric_summaries (
            run_id BIGINT NOT NULL,
            key VARCHAR NOT NULL,
            last_value DOUBLE PRECISION NOT NULL,
            last_step BIGINT NOT NULL,
            last_wall_time TIMESTAMP NOT NULL,
            min_value DOUBLE PRECISION NOT NULL,
            max_value DOUBLE PRECISION NOT NULL,
            count BIGINT NOT NULL,
            PRIMARY KEY (run_id, key)
        );
        CREATE TABLE best_metrics (
            experiment_id BIGINT NOT NULL,
            key VARCHAR NOT NULL,
            value DOUBLE PRECISION NOT NULL,
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
        CREATE INDEX adapters_by_experiment ON adapters (experiment_id);
        """,
    ),
    (
        2,
        "run logs in the store (the embedded store's migration 6)",
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
        3,
        "prediction samples (the embedded store's migration 5)",
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
        4,
        "tags and notes on experiments and runs (the embedded store's migration 3)",
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
        5,
        "adapter aliases (the embedded store's migration 4)",
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
        6,
        "copy marks (the embedded store's migration 9)",
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
        7,
        "best metrics: a tie goes to the lower run ID (core.directions.rank), not to the run that completed first (the embedded store's migration 10)",
        BEST_TIES_TO_LOWER_RUN_ID,
    ),
    (
        8,
        "ended runs' curves sealed one row a series, for whole-curve reads, dropped by a trigger wherever a point "
        "is rewritten (core.pg_curves; PostgreSQL only)",
        """
        CREATE TABLE sealed_curves (
            run_id BIGINT NOT NULL,
            key VARCHAR NOT NULL,
            count BIGINT NOT NULL,
            last_step BIGINT NOT NULL,
            points BYTEA NOT NULL,
            PRIMARY KEY (run_id, key)
        ) WITH (toast_tuple_target = 8160);  -- a curve up to ~340 points stays in its row: one page read
        ALTER TABLE sealed_curves ALTER COLUMN points SET STORAGE EXTERNAL;  -- packed numbers do not compress
        CREATE FUNCTION drop_rewritten_seals() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM 1 FROM runs WHERE id IN (SELECT run_id FROM gone) ORDER BY id FOR UPDATE;
            DELETE FROM sealed_curves c USING (SELECT DISTINCT run_id, key FROM gone) g
                WHERE c.run_id = g.run_id AND c.key = g.key;
            RETURN NULL;
        END
        $$;
        CREATE TRIGGER metrics_deleted AFTER DELETE ON metrics REFERENCING OLD TABLE AS gone
            FOR EACH STATEMENT EXECUTE FUNCTION drop_rewritten_seals();
        CREATE TRIGGER metrics_updated AFTER UPDATE ON metrics REFERENCING OLD TABLE AS gone
            FOR EACH STATEMENT EXECUTE FUNCTION drop_rewritten_seals();
        """,
    ),
]

# Held while migrating, so two processes starting at once do not both migrate.
_MIGRATION_LOCK = 7_346_321


def migrate(con: psycopg.Connection) -> list[int]:
    """Apply the migrations the database lacks, each in a transaction with its record; running it again changes nothing."""
    applied = []
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(%s)", [_MIGRATION_LOCK])
        if con.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:  # no DDL on an up-to-date
            con.execute(  # database: the app's role needs no CREATE right (README: Team mode)
                "CREATE TABLE schema_migrations "
                "(version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT now())"
            )
        done = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
        for version, name, sql in MIGRATIONS:
            if version in done:
                continue
            with con.transaction():
                con.execute(sql)
                con.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", [version, name])
            applied.append(version)
    return applied
