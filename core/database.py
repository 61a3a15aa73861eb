"""The one place that opens the DuckDB file, held by one process (the store's owner) for as long as it runs.

DuckDB lets one process hold a file at a time, so one process owns it (`core.owner`) and every other
process asks that owner for whole operations (`core.client`). Inside the owner, reads run on a cursor
per thread, each in its own snapshot, and never wait for writes; writes are handed to one committer
thread, which runs whatever has queued up meanwhile in one transaction (group commit): under load,
many small writes share one commit instead of each paying for its own.
"""

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import duckdb

from core.errors import StoreBusyError, StoreError, TuneDeckError
from core.migrations import migrate

T = TypeVar("T")
MAX_GROUP = 256  # writes in one transaction at most
MAX_POINT_VERSIONS = 100_000  # runs whose last change of points is remembered; past that, all count as changed


def _store_error(path: Path, error: duckdb.Error) -> StoreError:
    text = str(error)
    if "read-only mode" in text or "read_only" in text.lower():
        return StoreError(f"the store at {path} is on a read-only file system: it can be read, not written")
    return StoreError(f"the store at {path} failed: {text}")


def open_file(path: Path) -> tuple[duckdb.DuckDBPyConnection, bool]:
    """The file opened for writing (read-only when its folder is), migrated; and whether it is read-only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException as error:
        text = str(error)
        if "Conflicting lock" in text or "Could not set lock" in text:
            raise StoreBusyError(
                f"the store at {path} is held by another process ({text.split('is held in ')[-1].split('.')[0]}); "
                "open it with core.open_store(), which talks to the process that holds it"
            ) from None
        if "Read-only file system" in text and path.exists():
            return duckdb.connect(str(path), read_only=True), True
        raise StoreError(f"cannot open the store at {path}: {text}") from None
    try:
        migrate(con)
    except BaseException:
        con.close()
        raise
    return con, False


class Database:
    """An open store file: `read()` for a thread's cursor, `write(op)` to run `op(con)` in a committed transaction."""

    def __init__(self, path: Path | str):
        self.path = Path(path).resolve()
        self._con, self.read_only = open_file(self.path)
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []  # every read connection made, to close with the file
        self._idle: list[duckdb.DuckDBPyConnection] = []  # those not lent to a read right now
        self._cursors_lock = threading.Lock()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._committer = threading.Thread(target=self._commit_loop, name="tunedeck-committer", daemon=True)
        self._committer.start()
        self._closed = False
        self.groups = 0  # transactions committed, for tests and benchmarks that check grouping
        self.writes = 0
        self.generation = 0  # moves on after every commit: what a reader saw before it may be stale (core.read_cache)
        self._point_versions: dict[int, int] = {}  # run ID -> the generation that last changed its points
        self._points_floor = 0  # every run's points may have changed in this generation (the map was emptied)
        self._points_touched: set[int] = set()  # runs whose points the transaction being committed changes

    # -- reads -----------------------------------------------------------------------------
    @contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one read: this thread's open snapshot's, else an idle one lent for the read (each
        statement sees the last committed state). Lent, not kept per thread: the store server's gRPC runs each
        request on a thread of its own, so a connection per thread was a new one per request, never closed."""
        held = getattr(self._local, "snapshot", None)
        if held is not None:
            yield held
            return
        with self._cursors_lock:
            cursor = self._idle.pop() if self._idle else None
        if cursor is None:
            cursor = self._con.cursor()
            with self._cursors_lock:
                self._cursors.append(cursor)
        try:
            yield cursor
        finally:
            with self._cursors_lock:
                self._idle.append(cursor)

    @property
    def read_connections(self) -> int:
        """How many read connections are open: as many as reads ran at one moment, not one per request."""
        with self._cursors_lock:
            return len(self._cursors)

    @contextmanager
    def snapshot(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Several reads that see one state of the store (from its first statement on); nested calls share it."""
        held = getattr(self._local, "snapshot", None)
        if held is not None:
            yield held
            return
        with self.reader() as cursor:
            cursor.begin()
            self._local.snapshot = cursor
            try:
                yield cursor
            finally:
                self._local.snapshot = None
                cursor.rollback()

    def points_changed_since(self, run_ids, generation: int) -> bool:
        """Whether any of these runs' points changed after `generation` (taken before a read began): a curve read
        then is still current while other runs train, where any commit would make a store-wide answer stale."""
        if self._points_floor > generation:
            return True
        versions = self._point_versions
        return any(versions.get(run_id, 0) > generation for run_id in run_ids)

    # -- writes ----------------------------------------------------------------------------
    def touch_points(self, run_ids) -> None:
        """Called inside a write (on the committer thread) that adds or replaces these runs' points. A write rolled
        back afterwards leaves its runs marked until the next commit: they count as changed once, which costs a re-read."""
        self._points_touched.update(run_ids)

    def _committed(self, writes: int) -> None:
        self.groups += 1
        self.writes += writes
        generation = self.generation + 1
        if len(self._point_versions) + len(self._points_touched) > MAX_POINT_VERSIONS:
            self._points_floor = generation  # first: a reader between these two lines must not see an empty map alone
            self._point_versions = {}
        for run_id in self._points_touched:
            self._point_versions[run_id] = generation
        self._points_touched.clear()
        self.generation = generation

    def write(self, op: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run op in a transaction on the committer thread and return what it returns (or raise what it raises)."""
        if threading.current_thread() is self._committer:
            return op(self._con)  # an operation built from others: it is already inside the transaction
        if self._closed:
            raise StoreError(f"the store at {self.path} was closed in this process; open it again")
        done: Future = Future()
        self._queue.put((op, done))
        return done.result()

    def _commit_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < MAX_GROUP:
                try:
                    following = self._queue.get_nowait()
                except queue.Empty:
                    break
                if following is None:
                    self._queue.put(None)  # stop after this group
                    break
                group.append(following)
            self._commit(group)

    def _commit(self, group: list[tuple[Callable, Future]]) -> None:
        """All of the group in one transaction; if any operation fails, each runs again alone, so one bad request
        fails by itself and the others still commit."""
        if len(group) == 1:
            self._commit_alone(*group[0])
            return
        try:
            self._con.begin()
            results = [op(self._con) for op, _ in group]
            self._con.commit()
        except BaseException:
            self._rollback()
            for op, done in group:
                self._commit_alone(op, done)
            return
        self._committed(len(group))
        for (_, done), result in zip(group, results, strict=True):
            done.set_result(result)

    def _commit_alone(self, op: Callable, done: Future) -> None:
        try:
            self._con.begin()
            result = op(self._con)
            self._con.commit()
        except TuneDeckError as error:
            self._rollback()
            done.set_exception(error)
            return
        except duckdb.Error as error:
            self._rollback()
            done.set_exception(_store_error(self.path, error))
            return
        except BaseException as error:  # a bug in an operation: its caller hears of it, the committer goes on
            self._rollback()
            done.set_exception(error)
            return
        self._committed(1)
        done.set_result(result)

    def _rollback(self) -> None:
        try:
            self._con.rollback()
        except duckdb.Error:
            pass  # the failure being reported already ended the transaction

    def close(self) -> None:
        """Finish the writes already queued, then close every connection (the file's lock goes with them)."""
        self._closed = True
        self._queue.put(None)
        self._committer.join()
        with self._cursors_lock:
            for cursor in self._cursors:
                cursor.close()
            self._cursors.clear()
        self._con.close()
