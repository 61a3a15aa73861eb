"""The one place that opens the DuckDB file.

DuckDB lets one process hold a database file at a time (read-only openers may share it
with each other, never with a writer). TuneDeck shares the file between the dashboard,
the workers and training scripts, so no connection outlives an operation: `connect()`
opens, retries while another process holds the lock, commits or rolls back, and closes.
Inside one process a lock per file serializes operations, so threads never see each
other's half-finished transactions.
"""

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from core.errors import StoreBusyError, StoreError, TuneDeckError
from core.migrations import migrate

_process_locks: dict[Path, threading.RLock] = {}
_migrated: set[Path] = set()
_registry_lock = threading.Lock()
_local = threading.local()

FIRST_BACKOFF = 0.002
MAX_BACKOFF = 0.05


def _lock_for(path: Path) -> threading.RLock:
    with _registry_lock:
        return _process_locks.setdefault(path, threading.RLock())


def _is_lock_conflict(error: duckdb.Error) -> bool:
    text = str(error)
    return "Could not set lock" in text or "Conflicting lock" in text


def _open(path: Path, read_only: bool, timeout: float) -> duckdb.DuckDBPyConnection:
    """Open the file, waiting with jittered exponential backoff while another process holds it."""
    deadline = time.monotonic() + timeout
    backoff = FIRST_BACKOFF
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as error:
            if not _is_lock_conflict(error):
                raise StoreError(f"cannot open the store at {path}: {error}") from error
            if time.monotonic() >= deadline:
                raise StoreBusyError(
                    f"the store at {path} stayed locked by other processes for {timeout:.0f} s; "
                    "check for a stuck worker or raise TUNEDECK_LOCK_TIMEOUT"
                ) from error
            time.sleep(random.uniform(0, backoff))
            backoff = min(backoff * 2, MAX_BACKOFF)


def _ensure_schema(path: Path, timeout: float) -> None:
    if path in _migrated:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _open(path, read_only=False, timeout=timeout)
    try:
        migrate(con)
    finally:
        con.close()
    _migrated.add(path)


def _sessions() -> dict[Path, duckdb.DuckDBPyConnection]:
    if not hasattr(_local, "sessions"):
        _local.sessions = {}
    return _local.sessions


@contextmanager
def connect(path: Path, *, read_only: bool = False, timeout: float = 60.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """One operation's connection: a transaction when writing, closed on exit whatever happens.

    Inside read_session() a read reuses the session's connection instead of opening the file again.
    """
    path = Path(path).resolve()
    shared = _sessions().get(path)
    if shared is not None:
        if not read_only:
            raise StoreError("cannot write to the store inside a read session; finish reading first")
        yield shared
        return
    with _lock_for(path):
        _ensure_schema(path, timeout)
        con = _open(path, read_only=read_only, timeout=timeout)
        try:
            if not read_only:
                con.begin()
            yield con
            if not read_only:
                con.commit()
        except BaseException as error:
            if not read_only:
                _rollback(con)
            if isinstance(error, duckdb.Error) and not isinstance(error, TuneDeckError):
                raise StoreError(f"the store at {path} failed: {error}") from error
            raise
        finally:
            con.close()


@contextmanager
def read_session(path: Path, *, timeout: float = 60.0) -> Iterator[None]:
    """Several reads on one opening of the file: one open cost and one consistent view.

    Writers in other processes wait (with backoff) until the session ends, so keep it short.
    """
    path = Path(path).resolve()
    sessions = _sessions()
    if path in sessions:
        yield
        return
    with connect(path, read_only=True, timeout=timeout) as con:
        sessions[path] = con
        try:
            yield
        finally:
            del sessions[path]


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.rollback()
    except duckdb.Error:
        pass  # the transaction was already aborted by the failure being reported
