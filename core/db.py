"""The one place that opens the DuckDB file.

DuckDB lets one process hold a database file at a time (read-only openers may share it
with each other, never with a writer). TuneDeck shares the file between the dashboard,
the workers and training scripts in one of two ways, and `connect()` hides which:

- through the store server (`core.store_server`), one process that keeps the file open and
  runs everyone's SQL: no operation pays the ~17 ms open. `open_store()` starts it when none runs;
- directly, when no server runs: `connect()` opens, retries while another process holds the
  lock, commits or rolls back, and closes, so no connection outlives an operation. If a server
  appears while it waits, it uses the server instead.

Inside one process a lock per file serializes direct operations, so threads never see each
other's half-finished transactions; the server does the same with its write lock.
"""

import fcntl
import functools
import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from core import remote
from core.errors import StoreBusyError, StoreError, TuneDeckError
from core.migrations import migrate
from core.remote import RemoteConnection

_process_locks: dict[Path, threading.RLock] = {}
_migrated: set[Path] = set()
_registry_lock = threading.Lock()
_local = threading.local()

FIRST_BACKOFF = 0.002
MAX_BACKOFF = 0.05


def _resolve(path: Path | str) -> Path:
    """The store's absolute path; an absolute one is worked out once (resolving costs ~0.15 ms of system calls),
    a relative one every time, since it depends on the working folder."""
    path = Path(path)
    return _resolve_absolute(path) if path.is_absolute() else path.resolve()


@functools.lru_cache(maxsize=256)
def _resolve_absolute(path: Path) -> Path:
    return path.resolve()


def _lock_for(path: Path) -> threading.RLock:
    with _registry_lock:
        return _process_locks.setdefault(path, threading.RLock())


def _is_lock_conflict(error: duckdb.Error) -> bool:
    text = str(error)
    return "Could not set lock" in text or "Conflicting lock" in text


class _ServerAppeared(Exception):
    """A store server took the file while we waited for it: send the operation there instead."""


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
            server = remote.connect(path)
            if server is not None:
                server.close()
                raise _ServerAppeared() from error
            if time.monotonic() >= deadline:
                raise StoreBusyError(
                    f"the store at {path} stayed locked by other processes for {timeout:.0f} s; "
                    "check for a stuck worker or raise TUNEDECK_LOCK_TIMEOUT"
                ) from error
            time.sleep(random.uniform(0, backoff))
            backoff = min(backoff * 2, MAX_BACKOFF)


def _acquire_gate(path: Path, exclusive: bool, timeout: float) -> int | None:
    """The store's gate (a lock file beside it) that gives writers priority over a stream of readers.

    DuckDB lets any number of read-only openers share the file, so a writer retrying alone could
    wait forever behind readers taking turns. A writer holds the gate exclusively from before it
    opens until it closes; a reader holds it shared only while opening. So a waiting writer stops
    new readers from opening, and gets the file as soon as the current ones finish.
    """
    fd = _gate_file(path)
    if fd is None:
        return None  # a read-only directory: nobody can write, so there is no one to give priority to
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise StoreBusyError(
                    f"the store at {path} stayed busy for {timeout:.0f} s; check for a stuck process or raise TUNEDECK_LOCK_TIMEOUT"
                ) from None
            time.sleep(random.uniform(0, FIRST_BACKOFF * 2))


def _gate_file(path: Path) -> int | None:
    for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
        try:
            return os.open(f"{path}.gate", flags, 0o644)
        except OSError:
            continue
    return None


def _release_gate(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing drops the flock


def _open_gated(path: Path, read_only: bool, timeout: float) -> tuple[duckdb.DuckDBPyConnection, int | None]:
    """An open connection, and the gate a writer must release after closing it."""
    gate = _acquire_gate(path, exclusive=not read_only, timeout=timeout)
    try:
        con = _open(path, read_only=read_only, timeout=timeout)
    except BaseException:
        _release_gate(gate)
        raise
    if read_only:
        _release_gate(gate)
        gate = None
    return con, gate


def _ensure_schema(path: Path, timeout: float, read_only: bool) -> None:
    """Bring the file's schema up to date once per process; a read on a read-only disk goes on without."""
    if path in _migrated:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con, gate = _open_gated(path, read_only=False, timeout=timeout)
    except (OSError, StoreError) as error:
        if read_only and path.exists() and "Read-only file system" in str(error):
            return  # nobody can migrate it now; the read sees the schema the file has
        raise
    try:
        migrate(con)
    finally:
        con.close()
        _release_gate(gate)
    _migrated.add(path)


def _sessions() -> dict[Path, duckdb.DuckDBPyConnection]:
    if not hasattr(_local, "sessions"):
        _local.sessions = {}
    return _local.sessions


@contextmanager
def connect(
    path: Path,
    *,
    read_only: bool = False,
    timeout: float = 60.0,
    server_idle_exit: float | None = None,
    single: bool = False,
) -> Iterator[duckdb.DuckDBPyConnection | RemoteConnection]:
    """One operation's connection: a transaction when writing, closed on exit whatever happens.

    A running store server gets the operation; with `server_idle_exit` set, one is started when
    none runs (it exits after that many idle seconds). A `single` read runs one statement, which
    the server then runs without a transaction around it. Inside read_session() a read reuses the
    session's connection instead of opening another.
    """
    path = _resolve(path)
    shared = _sessions().get(path)
    if shared is not None:
        if not read_only:
            raise StoreError("cannot write to the store inside a read session; finish reading first")
        yield shared
        return
    deadline = time.monotonic() + timeout
    while True:
        server = remote.connect(path, not read_only, timeout, server_idle_exit, single=single)
        if server is not None:
            yield from _operation(server, path, read_only)
            return
        with _lock_for(path):
            try:
                _ensure_schema(path, max(0.0, deadline - time.monotonic()), read_only)
                con, gate = _open_gated(path, read_only, max(0.0, deadline - time.monotonic()))
            except _ServerAppeared:
                continue
            try:
                yield from _operation(con, path, read_only)
            finally:
                _release_gate(gate)
            return


def _operation(con, path: Path, read_only: bool) -> Iterator:
    """Yield the connection; commit a write on success, roll back on failure; close (which ends a served read's snapshot)."""
    try:
        if not read_only and not isinstance(con, RemoteConnection):
            con.begin()  # a served operation begins with its first statement (a write takes the write lock then)
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


def open_for_server(path: Path, timeout: float) -> duckdb.DuckDBPyConnection:
    """The store server's connection: opened once with writer priority, migrated, kept."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    con, gate = _open_gated(path, read_only=False, timeout=timeout)
    _release_gate(gate)  # from now on other processes find the server rather than the file
    migrate(con)
    return con


@contextmanager
def read_session(path: Path, *, timeout: float = 60.0, server_idle_exit: float | None = None) -> Iterator[None]:
    """Several reads on one connection: one consistent view (and, without a server, one open of the file).

    Without a server, writers in other processes wait (with backoff) until the session ends, so keep
    it short; through the server, writes go on beside it and the session keeps its snapshot.
    """
    path = _resolve(path)
    sessions = _sessions()
    if path in sessions:
        yield
        return
    with connect(path, read_only=True, timeout=timeout, server_idle_exit=server_idle_exit) as con:
        sessions[path] = con
        try:
            yield
        finally:
            del sessions[path]


def _rollback(con) -> None:
    try:
        con.rollback()
    except (duckdb.Error, TuneDeckError):
        pass  # the transaction was already aborted by the failure being reported
