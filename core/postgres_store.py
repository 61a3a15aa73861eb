"""The tracking store on PostgreSQL (team mode): every machine's app, workers and scripts use one database.

The domain operations are the embedded store's own (`core.sql_store`): the same validation, the same statements on
the same tables, run here through `core.pg_connection`, one operation per transaction. This class supplies what
differs on a shared server: a connection pool instead of one owner process, row locks where two machines may
change one run or one experiment at once (the embedded store has one writer), and metric reads streamed out with
binary COPY into Polars.
"""

import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from core.entities import Adapter, AdapterSpec, utcnow
from core.errors import ConflictError, StoreBusyError, StoreError, StoreUnavailableError, TuneDeckError
from core.pg_connection import (
    PgConnection,
    PooledConnection,
    allow_idle,
    points_cursor,
    points_frame,
    prepare,
    read_binary_points,
)
from core.pg_curves import one_curve, seal, seal_ended, wrong_seals
from core.pg_migrations import migrate
from core.sql import rows
from core.sql_store import SqlStore, as_id, checked_series_request
from core.status import ENDED_VALUES, RunStatus
from core.store_url import checked_store_url, connection_options, redacted, safe_message

RETRIES = 8  # a transaction PostgreSQL aborted for a deadlock or a serialization conflict is run again
POOL_SIZE = 10
# Seconds a change may sit waiting on its client (paused with SIGSTOP or Ctrl-Z, say) before PostgreSQL ends the
# session and its row locks with it: the store's own changes run their statements back to back, in milliseconds,
# and another machine's write to the same experiment waits at most this long. A large batch of points is given more
# (ENCODED_PER_SECOND: it is sorted and encoded between its statements, seconds for millions of points on a busy
# machine); a read-only snapshot holds no row locks and gets READ_SNAPSHOT_IDLE; `tunedeck store copy` opts out.
STALLED_TRANSACTION = 5
ENCODED_PER_SECOND = 1_000_000
READ_SNAPSHOT_IDLE = 600
# Whole series of more runs than this come by binary COPY: its setup costs ~1 ms more than a SELECT's (a history call
# of one run: 1.0 ms against 1.8 here), but it decodes 400,000 points a third faster.
FEW_RUNS = 16


class PostgresStore(SqlStore):
    """The store in a PostgreSQL database named by a postgresql:// URL; `data_dir` is this machine's local folder
    (metric journals, run working files)."""

    replays_journals = False

    def __init__(
        self,
        url: str,
        data_dir: Path | str,
        *,
        timeout: float = 60.0,
        dataset_roots: list[Path] | None = None,
        clock: Callable[[], datetime] | None = None,
    ):
        super().__init__(dataset_roots=dataset_roots, clock=clock or utcnow)
        self.url = checked_store_url(url)
        self.timeout = timeout
        self._local_data_dir = Path(data_dir)
        self._pool: ConnectionPool | None = None
        self._pool_lock = threading.Lock()
        self._local = threading.local()
        self._server_at: tuple[datetime, float] | None = None  # the server's time, and this machine's tick then
        if clock is None:
            self.clock = self._server_time
        self._migrate()

    def _server_time(self) -> datetime:
        """Now on the database server's clock: every machine stamps starts, heartbeats and ends, and judges silence,
        on one clock, so a machine whose clock is off neither looks silent nor fails others' healthy runs. Counted
        from the last reading on a tick that no setting of this machine's clock moves (an NTP step, `date`, a
        resumed VM), so a clock set after the reading changes nothing either."""
        if self._server_at is None:
            return utcnow()
        server, tick = self._server_at
        return server + timedelta(seconds=_tick() - tick)

    def _read_server_clock(self, raw: psycopg.Connection) -> None:
        before = _tick()
        (server,) = raw.execute("SELECT now()").fetchone()
        after = _tick()
        self._server_at = (server.astimezone(UTC).replace(tzinfo=None), (before + after) / 2)

    def _prepare(self, raw: psycopg.Connection) -> None:
        """A new pooled connection (the pool renews them hourly): set up, and the clocks compared again."""
        prepare(raw, stalled=STALLED_TRANSACTION, lock_wait=self.timeout)
        self._read_server_clock(raw)

    def __repr__(self) -> str:
        return f"PostgresStore({redacted(self.url)!r})"

    @property
    def data_dir(self) -> Path:
        return self._local_data_dir

    @property
    def location(self) -> str:
        return redacted(self.url)

    def _migrate(self) -> None:
        """Reach the server once, now, so a wrong URL or a server that is down is one clear error at start."""
        try:
            with psycopg.connect(self.url, autocommit=True, **connection_options(self.url)) as con:
                migrate(con)
                self._read_server_clock(con)
        except psycopg.Error as error:
            said = f"cannot use the PostgreSQL store at {self.location}: {safe_message(error)}{_hint(error)}"
            raise (StoreUnavailableError if _unreachable(error) else StoreError)(said) from None

    def _connections(self) -> ConnectionPool:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=POOL_SIZE,
                    kwargs={"autocommit": True, **connection_options(self.url)},
                    connection_class=PooledConnection,
                    configure=self._prepare,
                    timeout=self.timeout,
                    name="tunedeck",
                    open=True,
                )
            return self._pool

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    @contextmanager
    def _connection(self) -> Iterator[PgConnection]:
        """A pooled connection, with the cursor it keeps for the store's statements (one per connection, not per call)."""
        try:
            with self._connections().connection() as raw:
                yield raw.statements
        except PoolTimeout:
            raise StoreBusyError(
                f"no connection to the PostgreSQL store at {self.location} within {self.timeout:g} s: the database "
                "server may be down or unreachable, or every connection busy; `tunedeck doctor` says which"
            ) from None

    # -- one operation, one transaction ----------------------------------------------------------
    def _write(self, op: Callable[[PgConnection], Any], quiet: bool = False) -> Any:
        current = getattr(self._local, "writing", None)
        if current is not None:
            return op(current)  # an operation built from others: already inside the transaction
        for attempt in range(RETRIES):
            try:
                with self._connection() as con, con.raw.transaction():
                    self._local.writing = con
                    try:
                        return op(self._local.writing)
                    finally:
                        self._local.writing = None
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
                if attempt == RETRIES - 1:
                    raise StoreBusyError(f"the PostgreSQL store at {self.location} stayed too contended; try again") from None
            except pg_errors.UniqueViolation as error:
                raise _conflict(error) from None
            except psycopg.Error as error:
                raise self._failed(error) from None

    def _read(self, query: Callable[[PgConnection], Any]) -> Any:
        current = getattr(self._local, "reading", None)
        if current is not None:
            return query(current)
        with self.reading() as con:
            return query(con)

    def _statement(self, query: Callable[[PgConnection], Any]) -> Any:
        """A read of one statement: it sees one state by itself, outside any transaction."""
        current = getattr(self._local, "reading", None)
        if current is not None:
            return query(current)
        try:
            with self._connection() as con:
                return query(con)
        except psycopg.Error as error:
            raise self._failed(error) from None

    @contextmanager
    def reading(self) -> Iterator[PgConnection]:
        """Reads that see one state of the store: a read-only snapshot transaction; nested calls share it."""
        current = getattr(self._local, "reading", None)
        if current is not None:
            yield current
            return
        try:
            with self._connection() as con:
                con.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                allow_idle(con.raw, READ_SNAPSHOT_IDLE)  # a page may build what it shows between its reads
                self._local.reading = con
                try:
                    yield con
                finally:
                    self._local.reading = None
                    con.raw.execute("ROLLBACK")
        except TuneDeckError:
            raise
        except psycopg.Error as error:
            raise self._failed(error) from None

    def _failed(self, error: psycopg.Error) -> TuneDeckError:
        if isinstance(error, pg_errors.LockNotAvailable):
            return StoreBusyError(
                f"another client held what this operation needed for {self.timeout:g} s (TUNEDECK_LOCK_TIMEOUT); "
                "nothing was saved; try again"
            )
        if isinstance(error, pg_errors.IdleInTransactionSessionTimeout):
            return StoreUnavailableError(
                "this process stalled in the middle of an operation (was it paused?), so the PostgreSQL store at "
                f"{self.location} ended it; nothing of it was saved; try again"
            )
        if _connection_lost(error):
            return StoreUnavailableError(
                f"lost the connection to the PostgreSQL store at {self.location} ({safe_message(error)}): the database "
                "server may have stopped or restarted; try again in a moment (`tunedeck doctor` says whether it answers)"
            )
        return StoreError(f"the PostgreSQL store at {self.location} failed: {safe_message(error)}")

    def _store_points(self, con, points: pl.DataFrame) -> int:
        """A large batch is sorted and encoded between the statements of its transaction: PostgreSQL waits for that."""
        if points.height > ENCODED_PER_SECOND:
            allow_idle(con.raw, STALLED_TRANSACTION + points.height / ENCODED_PER_SECOND)
        return super()._store_points(con, points)

    # -- what a shared server needs on top of the domain operations -------------------------
    @staticmethod
    def _run_row(con, run_id: int) -> tuple[RunStatus, int]:
        """The run, locked until the transaction ends: two machines cannot both move it out of one state."""
        run_id = as_id(run_id, "run")
        rows(con, "SELECT 1 FROM runs WHERE id = ? FOR UPDATE", [run_id])
        return SqlStore._run_row(con, run_id)

    @staticmethod
    def _require_live(con, experiment_id: int) -> int:
        """The experiment, locked until the transaction ends: a delete on another machine waits for this run's insert.
        (Counters need no lock: they move by increments in one UPDATE, which PostgreSQL applies row by row.)"""
        _lock_experiment(con, experiment_id)
        return SqlStore._require_live(con, experiment_id)

    def _recompute_best(self, con, experiment_id: int) -> None:
        """Under the experiment's lock, as a completing run's update of the same best metrics is."""
        _lock_experiment(con, experiment_id)
        super()._recompute_best(con, experiment_id)

    def _transition(self, con, run_id: int, new: RunStatus, **fields: Any) -> int:
        """A run that ends has its curves sealed in the same transaction (core.pg_curves), before its experiment's
        row is locked for the counters: other runs of the experiment do not wait for the seal."""
        if new.is_terminal:
            seal(con, as_id(run_id, "run"))
        return super()._transition(con, run_id, new, **fields)

    def verify_integrity(self) -> list[str]:
        return super().verify_integrity() + self._read(wrong_seals)

    def build_overviews(self) -> None:
        """Seal every ended run's curves that have no seal or a stale one (a copy's destination)."""
        self._write(seal_ended)

    def _register_adapter(self, con, run_id: int, experiment_id: int, spec: AdapterSpec) -> Adapter:
        """Versions of one name are numbered one after another, whichever machine registers them."""
        rows(con, "SELECT pg_advisory_xact_lock(hashtext(?))", [f"tunedeck adapter {spec.name or experiment_id}"])
        return super()._register_adapter(con, run_id, experiment_id, spec)

    def get_metric_series(self, run_ids: list[int], keys: list[str] | None = None, max_points: int | None = 1000) -> pl.DataFrame:
        run_ids = checked_series_request(run_ids, keys, max_points)
        if max_points is None and len(run_ids) == 1 and keys is not None and len(keys) == 1:
            # one curve, as a training script's history call asks: an ended run's comes sealed in one row
            return self._statement(lambda con: one_curve(con, run_ids[0], keys[0]))
        key_filter = "AND key = ANY(%(keys)s::TEXT[])" if keys is not None else ""
        query = (_WHOLE_SERIES if max_points is None else _SERIES).format(key_filter=key_filter)
        params = {"runs": run_ids, "keys": list(keys or []), "buckets": (max_points or 2) // 2, "ended": ENDED_VALUES}
        if max_points is not None or len(run_ids) <= FEW_RUNS:
            return self._statement(lambda con: _selected_points(con, _ORDERED.format(query=query), params))

        def copy_out(con: PgConnection) -> tuple[list[str], bytes]:
            """The points in binary, keys as their index in `names`: fixed-width rows that numpy reads as they come."""
            names = sorted(set(keys)) if keys is not None else _stored_keys(con, params)
            out = io.BytesIO()
            with con.raw.cursor() as cursor, cursor.copy(_AS_BINARY.format(query=query), {**params, "names": names}) as copy:
                for chunk in copy:
                    out.write(chunk)
            return names, out.getvalue()

        # Keys named: one statement, so no snapshot transaction is needed (two round trips fewer per chart).
        names, data = self._read(copy_out) if keys is None else self._statement(copy_out)
        return read_binary_points(data, names).sort("run_id", "key", "step")


CLOCK_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", None)


def _tick() -> float:
    """Seconds on a clock that only runs forward, suspended time included where the system counts it (Linux)."""
    return time.clock_gettime(CLOCK_BOOTTIME) if CLOCK_BOOTTIME is not None else time.monotonic()


def _lock_experiment(con, experiment_id: int) -> None:
    """The experiment's row, locked until the transaction ends."""
    rows(con, "SELECT 1 FROM experiments WHERE id = ? FOR UPDATE", [as_id(experiment_id, "experiment")])


def _selected_points(con: PgConnection, query: str, params: dict) -> pl.DataFrame:
    with points_cursor(con.raw) as cursor:
        return points_frame(cursor.execute(query, params).fetchall())


def _stored_keys(con: PgConnection, params: dict) -> list[str]:
    return [row[0] for row in con.raw.execute(_KEYS, params).fetchall()]


def _connection_lost(error: psycopg.Error) -> bool:
    """The server went away under an open connection (stopped, restarted, a network cut): libpq's own error, with no
    SQLSTATE, a connection exception, or the server's shutdown notices."""
    shutdown = (pg_errors.AdminShutdown, pg_errors.CrashShutdown, pg_errors.CannotConnectNow)
    return isinstance(error, psycopg.OperationalError) and (
        error.sqlstate is None or error.sqlstate.startswith("08") or isinstance(error, shutdown)
    )


def _unreachable(error: psycopg.Error) -> bool:
    """A server that did not answer, or is starting or stopping (worth waiting for), not one that answered no: a
    wrong password or a missing database come back from the server as FATAL, and trying again changes nothing."""
    said = str(error)
    return _connection_lost(error) and ("FATAL" not in said or "the database system is" in said)


def _hint(error: psycopg.Error) -> str:
    """What to do about the first errors a new team meets, said with them."""
    if isinstance(error, pg_errors.InsufficientPrivilege):
        return (
            "; if TuneDeck's tables are not made or not migrated yet, run `tunedeck doctor` once with the URL of the "
            "role that owns the database, then start this again (README: Team mode)"
        )
    if "no password supplied" in str(error):
        return (
            "; give this role's password in PGPASSWORD, or in a ~/.pgpass line host:port:database:user:password that "
            "matches the URL exactly (a misspelled database name matches no line), or in the URL"
        )
    return ""


def _conflict(error: pg_errors.UniqueViolation) -> ConflictError:
    if error.diag.constraint_name == "experiments_live_name":
        return ConflictError("another experiment took that name a moment ago; pick another name")
    return ConflictError(f"someone else stored the same thing at the same moment; try again ({safe_message(error)})")


# keys by code point, as Polars sorts
_ORDERED = 'SELECT run_id, key, step, value, wall_time FROM ({query}) s ORDER BY run_id, key COLLATE "C", step'
_KEYS = "SELECT DISTINCT key FROM metric_summaries WHERE run_id = ANY(%(runs)s::BIGINT[]) ORDER BY key"
_AS_BINARY = (
    "COPY (SELECT run_id, array_position(%(names)s::TEXT[], key::TEXT) - 1, step, value, wall_time FROM ({query}) s) "
    "TO STDOUT (FORMAT binary)"
)
_WHOLE_SERIES = "SELECT run_id, key, step, value, wall_time FROM metrics WHERE run_id = ANY(%(runs)s::BIGINT[]) {key_filter}"
# As the embedded store's: series short enough come whole; longer ones keep the lowest and highest point of each
# step bucket, so spikes survive. Ties go to the earliest step. A running run's buckets are powers of two in steps
# (core.overviews), 2^shift with shift the bit length of last_step / buckets.
_SERIES = """
    WITH sizes AS (
        SELECT s.run_id, s.key, s.count AS n, s.last_step,
               CASE WHEN r.status <> ALL(%(ended)s::TEXT[])
                    THEN length(ltrim((s.last_step / %(buckets)s)::BIT(64)::TEXT, '0')) END AS shift
        FROM metric_summaries s JOIN runs r ON r.id = s.run_id
        WHERE s.run_id = ANY(%(runs)s::BIGINT[]) {key_filter}
    ),
    whole AS (
        SELECT m.run_id, m.key, m.step, m.value, m.wall_time
        FROM metrics m JOIN sizes z ON z.run_id = m.run_id AND z.key = m.key
        WHERE z.n <= 2 * %(buckets)s
    ),
    bucketed AS (
        SELECT m.run_id, m.key,
               CASE WHEN z.shift IS NOT NULL THEN m.step >> z.shift
                    -- whole numbers, as the embedded store's: BIGINT while step * buckets stays below 2^62, else NUMERIC
                    WHEN z.last_step < 4611686018427387904 / %(buckets)s THEN m.step * %(buckets)s / (z.last_step + 1)
                    ELSE div(m.step::NUMERIC * %(buckets)s, z.last_step::NUMERIC + 1)::BIGINT END AS bucket,
               (array_agg(m.step ORDER BY m.value, m.step))[1] AS low_step, min(m.value) AS low,
               (array_agg(m.wall_time ORDER BY m.value, m.step))[1] AS low_time,
               (array_agg(m.step ORDER BY m.value DESC, m.step))[1] AS high_step, max(m.value) AS high,
               (array_agg(m.wall_time ORDER BY m.value DESC, m.step))[1] AS high_time
        FROM metrics m JOIN sizes z ON z.run_id = m.run_id AND z.key = m.key
        WHERE z.n > 2 * %(buckets)s
        GROUP BY 1, 2, 3
    )
    SELECT run_id, key, step, value, wall_time FROM whole
    UNION ALL SELECT run_id, key, low_step, low, low_time FROM bucketed
    UNION ALL SELECT run_id, key, high_step, high, high_time FROM bucketed WHERE high_step <> low_step
"""
