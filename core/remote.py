"""The client side of the store server: find it (or start it) and send it one operation's SQL.

A `RemoteConnection` offers the few connection methods the store uses (`execute(...).fetchall()`,
`sql(...).pl()`, `register`, `begin` / `commit` / `rollback`), so `core.duckdb_store` runs the same
code whether it holds the file itself or talks to the server. See `core.store_server`.
"""

import fcntl
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Client, Connection
from pathlib import Path

import polars as pl
import pyarrow as pa

from core.errors import StoreError

SPAWN_RETRY_AFTER = 30.0  # seconds before trying again to start a server that failed to start
_spawn_lock = threading.Lock()
_spawn_failed: dict[Path, float] = {}


class ServerGone(Exception):
    """The server closed the connection before it ran anything: the operation may be retried."""


def address_for(path: Path) -> str:
    """The socket beside the store, or in the temp folder when that path is too long for a Unix socket."""
    beside = f"{path}.sock"
    if len(beside.encode()) < 100:
        return beside
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:24]
    return os.path.join(tempfile.gettempdir(), f"tunedeck-{os.getuid()}-{digest}.sock")


def connect(path: Path) -> "RemoteConnection | None":
    """A connection to the running server, or None when no server answers at that address."""
    address = address_for(path)
    if not os.path.exists(address):
        return None
    try:
        return RemoteConnection(Client(address, family="AF_UNIX"))
    except (ConnectionRefusedError, FileNotFoundError):
        return None  # a socket left by a server that was killed


def start(path: Path, idle_exit: float, timeout: float) -> "RemoteConnection | None":
    """Start a server for the store and connect to it; None if it cannot run (a read-only folder, say).

    Only one server per store survives: the others see it holds the claim and exit at once.
    """
    with _spawn_lock:
        found = connect(path)
        if found is not None or time.monotonic() - _spawn_failed.get(path, -SPAWN_RETRY_AFTER) < SPAWN_RETRY_AFTER:
            return found
        process = _spawn(path, idle_exit)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = connect(path)
            if found is not None:
                return found
            if process is None or (process.poll() is not None and process.returncode != 0):
                break
            time.sleep(0.005)
        _spawn_failed[path] = time.monotonic()
        return None


def _spawn(path: Path, idle_exit: float) -> subprocess.Popen | None:
    logs = path.parent / "logs"
    try:
        logs.mkdir(parents=True, exist_ok=True)
        log = open(logs / "store-server.log", "ab")  # noqa: SIM115 - the child keeps it
    except OSError:
        log = subprocess.DEVNULL
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "core.store_server", str(path), "--idle-exit", str(idle_exit)]
    try:
        return subprocess.Popen(
            command, cwd=root, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True
        )
    except OSError:
        return None
    finally:
        if log is not subprocess.DEVNULL:
            log.close()


class _Rows:
    def __init__(self, rows: list[tuple]):
        self._rows = rows

    def fetchall(self) -> list[tuple]:
        return self._rows


class _Result:
    """A query result the server sent as an Arrow table, read the way a DuckDB result is."""

    def __init__(self, table: pa.Table):
        self._table = table

    def arrow(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self._table.schema, self._table.to_batches())


class RemoteConnection:
    """One operation's line to the server; every call is one round trip."""

    def __init__(self, conn: Connection):
        self._conn = conn
        self._answered = False

    def call(self, *request):
        try:
            self._conn.send(request)
            status, value = self._conn.recv()
        except (EOFError, OSError) as error:
            if not self._answered:
                raise ServerGone() from error
            raise StoreError(
                "the store server stopped in the middle of an operation; nothing of it was saved unless it had committed"
            ) from error
        self._answered = True
        if status == "error":
            raise value
        return value

    def execute(self, sql: str, params: list | None = None) -> _Rows:
        return _Rows(self.call("rows", sql, params or []))

    def sql(self, sql: str, params: list | None = None) -> _Result:
        return _Result(self.call("arrow", sql, params or []))

    def register(self, name: str, frame: pl.DataFrame) -> None:
        """Send a frame for the next statements to read; strings go dictionary-encoded (few distinct metric keys)."""
        self.call("register", name, frame.with_columns(pl.col(pl.String).cast(pl.Categorical)).to_arrow())

    def unregister(self, name: str) -> None:
        self.call("unregister", name)

    def begin(self, write: bool = True, timeout: float = 60.0) -> None:
        self.call("begin", write, timeout)

    def commit(self) -> None:
        self.call("commit")

    def rollback(self) -> None:
        self.call("rollback")

    def close(self) -> None:
        try:
            self._conn.close()
        except OSError:
            pass


def running(path: Path) -> bool:
    """Whether a server holds the store's claim (a probe that, unlike connecting, keeps no server awake)."""
    try:
        fd = os.open(f"{address_for(path)}.lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def stop(path: Path, timeout: float = 15.0) -> bool:
    """Ask the store's server to finish what it is doing and exit; True once none runs."""
    if running(path):
        try:
            os.kill(int(Path(f"{address_for(path)}.lock").read_text()), signal.SIGTERM)
        except (ValueError, ProcessLookupError):
            pass  # it exited between the probe and the signal
    deadline = time.monotonic() + timeout
    while running(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
