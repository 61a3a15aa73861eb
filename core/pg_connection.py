"""A psycopg connection that answers the calls the store's statements make (core.sql's rows/first/frame, register).

So the store's domain operations (core.sql_store) run on PostgreSQL as written: `?` placeholders become psycopg's `%s`;
`list_contains` and `contains` exist as SQL functions (core.pg_migrations); the few statements PostgreSQL words
differently are looked up in TRANSLATIONS by their text; a frame registered as `points` goes in with one binary COPY.
"""

import functools

import numpy as np
import polars as pl
import psycopg
from psycopg.pq import Format

from core import sql_store
from core.points import POINT_SCHEMA
from core.sql import identifier

# PostgreSQL type OIDs and the Polars types their columns come back as (others are inferred).
_POLARS_TYPES = {
    16: pl.Boolean,
    20: pl.Int64,
    21: pl.Int16,
    23: pl.Int32,
    25: pl.String,
    700: pl.Float32,
    701: pl.Float64,
    1043: pl.String,
    1114: pl.Datetime("us"),
    1700: pl.Float64,
}
_NUMERIC = 1700  # Decimal values, NaN and infinities among them: only a column at a time makes floats of every one
ROWS_AT_ONCE = 500  # rows up to which a frame is built from rows; past ~1,000, a column at a time is faster
_PG_TYPES = {pl.Int64: "BIGINT", pl.Int32: "INTEGER", pl.UInt32: "BIGINT", pl.String: "TEXT", pl.Float64: "DOUBLE PRECISION"}

# Per connection, created once: where registered frames land. `points` reads like the embedded store's frame.
TEMP_TABLES = """
    CREATE TEMP TABLE points_in (run_id BIGINT, key_index INTEGER, step BIGINT, value DOUBLE PRECISION, wall_time TIMESTAMP)
        ON COMMIT DELETE ROWS;
    CREATE TEMP TABLE point_keys (key_index INTEGER, key TEXT) ON COMMIT DELETE ROWS;
    CREATE TEMP VIEW points AS
        SELECT p.run_id, k.key, p.step, p.value, p.wall_time FROM points_in p JOIN point_keys k USING (key_index);
    CREATE TEMP TABLE series (run_id BIGINT, key TEXT, points BIGINT, steps BIGINT, first_step BIGINT) ON COMMIT DELETE ROWS;
"""
_REGISTERED = {"points": ("points_in", "point_keys"), "series": ("series",)}
_EMPTIED = {name: "TRUNCATE " + ", ".join(tables) for name, tables in _REGISTERED.items()}

_LAST_BY_STEP = "(array_agg({column} ORDER BY step DESC))[1]"
_SUMMARY_OF = (
    f"SELECT run_id, key, {_LAST_BY_STEP.format(column='value')}, max(step), {_LAST_BY_STEP.format(column='wall_time')}, "
    "min(value), max(value), count(*)"
)
_NEW_SUMMARIES = f"INSERT INTO metric_summaries {_SUMMARY_OF} FROM points GROUP BY run_id, key"


def _normal(sql: str) -> str:
    return " ".join(sql.split())


# The domain operations' statements (core.sql_store) that PostgreSQL words differently (arg_max, INSERT OR REPLACE, ANTI JOIN,
# GROUP BY ALL), by their text. tests/core/test_postgres_store.py checks each key still occurs in core.sql_store.
TRANSLATIONS = {
    _normal(duckdb_sql): pg_sql
    for duckdb_sql, pg_sql in [
        (
            sql_store._BEST_UPSERT,
            "INSERT INTO best_metrics SELECT unnest(?::BIGINT[]), unnest(?::TEXT[]), unnest(?::DOUBLE PRECISION[]), unnest(?::BIGINT[]) "
            "ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value, run_id = excluded.run_id",
        ),
        (
            sql_store._BATCH_CHECK,
            """
            SELECT r.unknown, m.rewrites, m.continued, r.completed_in
            FROM (
                SELECT count(s.run_id) FILTER (WHERE series.first_step <= s.last_step) AS rewrites, count(s.run_id) AS continued
                FROM series LEFT JOIN metric_summaries s USING (run_id, key)
            ) m, (
                SELECT array_agg(DISTINCT series.run_id ORDER BY series.run_id) FILTER (WHERE runs.id IS NULL) AS unknown,
                       array_agg(DISTINCT runs.experiment_id ORDER BY runs.experiment_id)
                           FILTER (WHERE runs.status = 'completed') AS completed_in
                FROM series LEFT JOIN runs ON runs.id = series.run_id
            ) r
            """,
        ),
        (sql_store._NEW_SUMMARIES, _NEW_SUMMARIES),
        (sql_store._MERGED_SUMMARIES, _NEW_SUMMARIES + sql_store.SUMMARY_MERGE),
        (
            """
            INSERT OR REPLACE INTO metric_summaries
            SELECT run_id, key, arg_max(value, step), max(step), arg_max(wall_time, step), min(value), max(value), count(*)
            FROM metrics
            WHERE (run_id, key) IN (SELECT DISTINCT run_id, key FROM points)
            GROUP BY run_id, key
            """,
            f"""
            INSERT INTO metric_summaries
            {_SUMMARY_OF} FROM metrics
            WHERE (run_id, key) IN (SELECT DISTINCT run_id, key FROM points)
            GROUP BY run_id, key
            ON CONFLICT (run_id, key) DO UPDATE SET
                last_value = excluded.last_value, last_step = excluded.last_step, last_wall_time = excluded.last_wall_time,
                min_value = excluded.min_value, max_value = excluded.max_value, count = excluded.count
            """,
        ),
        (
            sql_store._SUMMARY_MISMATCHES,  # the same check, with the last value by step in PostgreSQL's words
            sql_store._SUMMARY_MISMATCHES.replace("arg_max(value, step)", _LAST_BY_STEP.format(column="value")),
        ),
        (
            sql_store._DUPLICATE_POINTS,
            "SELECT run_id, key, step, count(*) FROM metrics GROUP BY run_id, key, step HAVING count(*) > 1 "
            "ORDER BY 1, 2, 3 LIMIT 100",
        ),
        (
            sql_store._BROKEN_LINKS,
            """
            SELECT 'points of run', d.run_id FROM (SELECT DISTINCT run_id FROM metrics) d
                WHERE NOT EXISTS (SELECT 1 FROM runs WHERE runs.id = d.run_id)
            UNION ALL SELECT 'run', r.id FROM runs r WHERE NOT EXISTS (SELECT 1 FROM experiments e WHERE e.id = r.experiment_id)
            UNION ALL SELECT 'adapter link of run', r.id FROM runs r
                WHERE r.adapter_id IS NOT NULL AND r.adapter_id NOT IN (SELECT id FROM adapters)
            UNION ALL SELECT 'best metric of experiment', b.experiment_id FROM best_metrics b
                WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = b.run_id)
            """,
        ),
        (
            "SELECT experiment_id, status, count(*) FROM runs GROUP BY ALL",
            "SELECT experiment_id, status, count(*) FROM runs GROUP BY experiment_id, status",
        ),
    ]
}


@functools.lru_cache(maxsize=512)
def postgres_sql(sql: str) -> str:
    """The statement in PostgreSQL's words, with psycopg's placeholders."""
    sql = TRANSLATIONS.get(_normal(sql), sql)
    return sql.replace("%", "%%").replace("?", "%s")


class _NoRows:
    @staticmethod
    def fetchall() -> list:
        return []


class _Query:
    def __init__(self, cursor: psycopg.Cursor):
        self.cursor = cursor

    def pl(self) -> pl.DataFrame:
        return to_frame(self.cursor)


def to_frame(cursor: psycopg.Cursor, found: list[tuple] | None = None) -> pl.DataFrame:
    """The cursor's result (or the rows of it already fetched) as a Polars frame, typed by the columns' PostgreSQL
    types even when empty. A small result is built from its rows in one call (a 100-point history: 0.1 ms, where a
    column at a time took 0.26), a large one a column at a time (8,000 rows: 5 ms, where rows took 11)."""
    found = cursor.fetchall() if found is None else found
    schema = [(column.name, _POLARS_TYPES.get(column.type_code)) for column in cursor.description]
    if 0 < len(found) <= ROWS_AT_ONCE and _NUMERIC not in {column.type_code for column in cursor.description}:
        return pl.DataFrame(found, schema=schema, orient="row", infer_schema_length=None)
    columns = zip(*found, strict=True) if found else ([] for _ in schema)
    return pl.DataFrame([pl.Series(name, values, dtype=dtype) for (name, dtype), values in zip(schema, columns, strict=True)])


class PgConnection:
    """A connection as the store's statements use it."""

    def __init__(self, raw: psycopg.Connection):
        self.raw = raw

    @functools.cached_property
    def cursor(self) -> psycopg.Cursor:
        """Numbers and timestamps come as they are stored, not as text to parse."""
        return self.raw.cursor(binary=True)

    def execute(self, sql: str, params: list | tuple | None = None):
        self.cursor.execute(postgres_sql(sql), params or None)
        return self.cursor if self.cursor.description is not None else _NoRows()

    def executemany(self, sql: str, params: list) -> None:
        self.cursor.executemany(postgres_sql(sql), params)

    def sql(self, sql: str, params: list | tuple | None = None) -> _Query:
        self.cursor.execute(postgres_sql(sql), params or None)
        return _Query(self.cursor)

    def register(self, name: str, frame: pl.DataFrame) -> None:
        if name == "points":
            copy_points(self.raw, frame)
            return
        if name not in _REGISTERED:
            raise ValueError(f"no temporary table for a frame named {name!r}")
        placeholders = ", ".join(f"?::{_PG_TYPES[dtype]}[]" for dtype in frame.dtypes)
        self.execute(
            f"INSERT INTO {identifier(name)} SELECT * FROM unnest({placeholders})", [column.to_list() for column in frame.iter_columns()]
        )

    def unregister(self, name: str) -> None:
        self.execute(_EMPTIED[name])


class PooledConnection(psycopg.Connection):
    """A pool's connection, which keeps its PgConnection (and so one cursor) for its life rather than one per call."""

    @functools.cached_property
    def statements(self) -> PgConnection:
        return PgConnection(self)


_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)
_ROW = np.dtype(
    [
        ("fields", ">i2"),
        *[
            item
            for name, kind in [("run_id", ">i8"), ("key_index", ">i4"), ("step", ">i8"), ("value", ">f8"), ("wall_time", ">i8")]
            for item in [(f"{name}_size", ">i4"), (name, kind)]
        ],
    ]
)
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01, where PostgreSQL's binary timestamps count from


def binary_points(points: pl.DataFrame) -> tuple[bytes, list[str]]:
    """The points in PostgreSQL's binary COPY format (keys as indexes into the returned list), built as whole columns."""
    names = points["key"].unique(maintain_order=True).to_list()
    rows = np.empty(points.height, dtype=_ROW)
    rows["fields"] = 5
    for name in ("run_id", "key_index", "step", "value", "wall_time"):
        rows[f"{name}_size"] = _ROW[name].itemsize
    rows["run_id"] = points["run_id"].to_numpy()
    rows["key_index"] = points["key"].replace_strict(names, range(len(names)), return_dtype=pl.Int32).to_numpy()
    rows["step"] = points["step"].to_numpy()
    rows["value"] = points["value"].to_numpy()
    rows["wall_time"] = points["wall_time"].dt.epoch("us").to_numpy() - PG_EPOCH_US
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER, names


def points_cursor(raw: psycopg.Connection) -> psycopg.Cursor:
    """A binary cursor that reads timestamps as PostgreSQL sends them, microseconds since 2000 in 8 bytes: exact for
    every date, and a column of ints becomes a Polars datetime column at once (datetime objects took 0.2 ms per 500
    points to convert; EXTRACT on the server cost more than that saved)."""
    cursor = raw.cursor(binary=True)
    cursor.adapters.register_loader("timestamp", raw.adapters.get_loader(raw.adapters.types["int8"].oid, Format.BINARY))
    return cursor


def points_frame(found: list[tuple]) -> pl.DataFrame:
    """Points fetched by a `points_cursor` as (run_id, key, step, value, wall_time) rows, built a column at a time."""
    return point_columns(*(zip(*found, strict=True) if found else ([] for _ in POINT_SCHEMA)))


def point_columns(run_id, key, step, value, wall_time) -> pl.DataFrame:
    """The store's point frame from its columns (sequences or arrays), `wall_time` in microseconds since 2000, as
    PostgreSQL sends it."""
    return pl.DataFrame(
        [
            pl.Series("run_id", run_id, dtype=pl.Int64),
            pl.Series("key", key, dtype=pl.String),
            pl.Series("step", np.asarray(step, dtype=np.int64)),
            pl.Series("value", np.asarray(value, dtype=np.float64)),
            pl.Series("wall_time", np.asarray(wall_time, dtype=np.int64) + PG_EPOCH_US).cast(POINT_SCHEMA["wall_time"]),
        ]
    )


def read_binary_points(data: bytes, keys: list[str]) -> pl.DataFrame:
    """Points that came out of a binary COPY in the layout binary_points writes (keys as indexes into `keys`)."""
    if len(data) <= len(_COPY_HEADER) + len(_COPY_TRAILER):
        return pl.DataFrame(schema=POINT_SCHEMA)
    rows = np.frombuffer(data, dtype=_ROW, offset=len(_COPY_HEADER), count=(len(data) - len(_COPY_HEADER) - 2) // _ROW.itemsize)
    return pl.DataFrame(
        {
            "run_id": rows["run_id"].astype(np.int64),
            "key": pl.Series(keys, dtype=pl.String).gather(rows["key_index"].astype(np.int32)),
            "step": rows["step"].astype(np.int64),
            "value": rows["value"].astype(np.float64),
            "wall_time": (rows["wall_time"].astype(np.int64) + PG_EPOCH_US).view("datetime64[us]"),
        },
        schema=POINT_SCHEMA,
    )


def copy_points(raw: psycopg.Connection, points: pl.DataFrame) -> None:
    data, keys = binary_points(points)
    with raw.cursor() as cursor:
        cursor.execute("INSERT INTO point_keys SELECT * FROM unnest(%s::INTEGER[], %s::TEXT[])", [list(range(len(keys))), keys])
        with cursor.copy("COPY points_in (run_id, key_index, step, value, wall_time) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(data)


def prepare(raw: psycopg.Connection, stalled: float, lock_wait: float) -> None:
    """A new connection: the temporary tables registered frames land in, and how long it waits on others (a row
    another client locked: `lock_wait` seconds) and they on it (its transaction idle on a stalled client: `stalled`)."""
    raw.execute(TEMP_TABLES)
    raw.execute(
        "SELECT set_config('idle_in_transaction_session_timeout', %s, false), set_config('lock_timeout', %s, false)",
        [_milliseconds(stalled), _milliseconds(lock_wait)],
    )


def allow_idle(raw: psycopg.Connection, seconds: float) -> None:
    """For the rest of this transaction: how long it may wait on its client before PostgreSQL ends it."""
    raw.execute("SELECT set_config('idle_in_transaction_session_timeout', %s, true)", [_milliseconds(seconds)])


def _milliseconds(seconds: float) -> str:
    """A timeout as PostgreSQL takes it: whole milliseconds, at least 1 (0 means none), at most its 2^31 - 1."""
    return f"{min(max(round(seconds * 1000), 1), 2**31 - 1)}ms"
