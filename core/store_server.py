"""The store server: the one process that owns the DuckDB file and runs every other process's operations.

Each request is one whole operation of the store contract ("start this run", "append this batch",
"list these runs"), executed here in one transaction (`core.database` groups concurrent writes into
one commit). Nothing else crosses the process boundary: no SQL, no open transaction, no lock, so a
client that is paused or killed mid-request holds up nobody. The transport is Arrow Flight over a
Unix socket beside the store: arguments and answers as JSON, metric batches and frames as Arrow.

The first `open_store()` that finds no server starts one (`core.remote`); it exits after
`--idle-exit` seconds without a request, closing the file. It also replays the metric journals
that killed writers left behind (`core.journal`).

    python -m core.store_server data/tunedeck.duckdb --idle-exit 60
"""

import argparse
import inspect
import io
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.flight as flight
from pydantic_core import to_json

from core import flocks, journal
from core.database import REQUEST_DEADLINE, is_fatal
from core.duckdb_store import DuckDBStore
from core.errors import StoreError, TuneDeckError
from core.read_cache import ReadCache
from core.remote import DEADLINE, address_for, answers
from core.settings import get_settings
from core.sql_store import checked_series_request
from core.store import CURVE_READS, READS, TrackingStore, operations

log = logging.getLogger("tunedeck.store_server")
POLL = 0.2  # seconds between the main loop's looks at idleness and signals
JOURNAL_SCAN = 2.0  # seconds between looks for journals that dead writers left
DRAIN = 10.0  # seconds a closing server waits for requests in progress
SWITCH_INTERVAL = 0.0005  # seconds a thread holds the interpreter while another waits for it


def error_payload(error: Exception) -> bytes:
    """How a store error travels: its kind, message and per-field messages, so the caller raises the same error."""
    return json.dumps(
        {"type": type(error).__name__, "message": str(error), "fields": getattr(error, "field_errors", {})}
    ).encode()


class StoreServer(flight.FlightServerBase):
    OPERATIONS = operations()
    SIGNATURES = {name: inspect.signature(getattr(TrackingStore, name)) for name in OPERATIONS}  # with `self`

    def __init__(self, store: DuckDBStore, address: str, cache_bytes: int = 0):
        super().__init__(f"grpc+unix://{address}", middleware={_Deadline.KEY: _Deadlines()})
        self.store = store
        self.cache = ReadCache(cache_bytes, store.db.points_changed_since) if cache_bytes else None
        self._state = threading.Lock()
        self.fatal = threading.Event()  # the database was invalidated: serve() exits, the next request opens it anew
        self._active = 0
        self._last_seen = time.monotonic()

    # -- the three ways in -----------------------------------------------------------------
    def do_action(self, context, action):
        with _client_deadline(context):
            return self._do_action(action)

    def _do_action(self, action):
        body = action.body.to_pybytes()

        def answer() -> pa.Buffer:
            head, points, batch = body.partition(b"\n")  # JSON has no raw line break: what follows one is a small batch
            arguments = _arguments(head)
            if points:
                arguments["points"] = pl.read_ipc_stream(io.BytesIO(batch))
            return pa.py_buffer(to_json(self._call(action.type, arguments)))

        return [flight.Result(self._answer(action.type, ("action", action.type, body), answer))]

    def do_get(self, context, ticket):
        request = _arguments(ticket.ticket)
        operation = request.pop("operation", "")

        def answer() -> pa.Table:
            result = self._call(operation, request)
            if not isinstance(result, pl.DataFrame):
                raise flight.FlightServerError("that operation does not answer with a table; ask for it as an action")
            return result.to_arrow()

        if operation in CURVE_READS and self.cache is not None:
            return flight.RecordBatchStream(self._curves(operation, request, answer))
        return flight.RecordBatchStream(self._answer(operation, ("get", ticket.ticket), answer))

    def do_put(self, context, descriptor, reader, writer):
        with _client_deadline(context):
            self._do_put(descriptor, reader, writer)

    def _do_put(self, descriptor, reader, writer):
        request = _arguments(descriptor.command)
        with self._busy():  # an upload in progress keeps the server from leaving as idle
            points = pl.from_arrow(reader.read_all())  # read whole before the operation: a stalled sender holds no lock
        if points.height != request.pop("rows", None):  # a sender killed mid-stream ends it early, without an error
            raise flight.FlightServerError(
                "the batch of points arrived incomplete; nothing of it was stored",
                extra_info=error_payload(StoreError("incomplete batch")),
            )
        result = self._call(request.pop("operation", ""), {**request, "points": points})
        writer.write(pa.py_buffer(to_json(result)))

    def _answer(self, operation: str, request: tuple, answer: Callable[[], Any]) -> Any:
        """A read's answer as last given, unless a write has committed since; anything else, answered now."""
        if self.cache is None or operation not in READS:
            return answer()
        with self._busy():  # an answer from the cache is a request too: the server is not idle
            self.store.db.settle()  # run events answered before this read are in the store, and count as a change
            generation = self.store.db.generation  # before the read: a commit during it makes its answer stale
            found = self.cache.get(request, generation)
            if found is None:
                found = answer()
                self.cache.put(request, generation, found, found.size if isinstance(found, pa.Buffer) else found.nbytes)
            return found

    def _curves(self, operation: str, request: dict, answer: Callable[[], pa.Table]) -> pa.Table:
        """Curves answered run by run, each kept until its own run's points change: on a page of 200 runs where 4
        train, those 4 are read again, not all 200. The store buckets each run's curve by that run's own length,
        so the parts put together are exactly the answer of one read."""
        try:
            runs = sorted(set(checked_series_request(request.get("run_ids"), request.get("keys"), request.get("max_points"))))
        except TuneDeckError:
            return answer()  # the store's own error, as for any request
        if not runs:
            return answer()
        shape = json.dumps({name: value for name, value in request.items() if name != "run_ids"}, sort_keys=True)
        with self._busy():
            self.store.db.settle()
            generation = self.store.db.generation  # before the read, as in _answer
            parts = {run_id: self.cache.get((operation, run_id, shape), generation) for run_id in runs}
            missing = [run_id for run_id, part in parts.items() if part is None]
            if missing:
                read = self._call(operation, {**request, "run_ids": missing})
                by_run = read.partition_by("run_id", as_dict=True)
                for run_id in missing:
                    part = by_run.get((run_id,), read.clear()).to_arrow()
                    self.cache.put((operation, run_id, shape), generation, part, part.nbytes, runs=[run_id])
                    parts[run_id] = part
            return pa.concat_tables([parts[run_id] for run_id in runs]).combine_chunks()

    def _call(self, operation: str, arguments: dict):
        if operation not in self.OPERATIONS:
            raise flight.FlightServerError(
                f"unknown store operation {operation!r}", extra_info=error_payload(StoreError("unknown operation"))
            )
        with self._busy():
            return self._run(operation, arguments)

    def _run(self, operation: str, arguments: dict):
        method = getattr(self.store, operation)
        try:
            self.SIGNATURES[operation].bind(self.store, **arguments)
        except TypeError as error:  # arguments that do not fit the contract (a client of another version, say)
            raise flight.FlightServerError(str(error), extra_info=error_payload(StoreError(f"bad request: {error}"))) from None
        try:
            return method(**arguments)
        except TuneDeckError as error:
            self._note_fatal(error)
            raise flight.FlightServerError(str(error), extra_info=error_payload(error)) from None
        except Exception as error:  # a fault of the store's own, TypeError included: logged whole here
            self._note_fatal(error)
            log.exception("operation %s failed", operation)
            wrapped = StoreError(f"the store failed: {type(error).__name__}: {error}")
            raise flight.FlightServerError(str(wrapped), extra_info=error_payload(wrapped)) from None

    @contextmanager
    def _busy(self) -> Iterator[None]:
        with self._state:
            self._active += 1
        try:
            yield
        finally:
            with self._state:
                self._active -= 1
                self._last_seen = time.monotonic()

    def _note_fatal(self, error: BaseException) -> None:
        if is_fatal(error) and not self.fatal.is_set():
            log.error("the database was invalidated (%s); this server exits so that the next request opens it anew", error)
            self.fatal.set()

    def idle_for(self) -> float:
        with self._state:
            return 0.0 if self._active else time.monotonic() - self._last_seen


class _Deadline(flight.ServerMiddleware):
    """When the client of a call gives up waiting (core.remote sends it as a header; older clients send none)."""

    KEY = "deadline"

    def __init__(self, at: float | None):
        self.at = at


class _Deadlines(flight.ServerMiddlewareFactory):
    def start_call(self, info, headers):
        try:
            return _Deadline(float(headers.get(DEADLINE, [None])[0]))
        except (TypeError, ValueError):
            return None


@contextmanager
def _client_deadline(context) -> Iterator[None]:
    """The call's writes are refused once its client has given up (core.database.REQUEST_DEADLINE)."""
    found = context.get_middleware(_Deadline.KEY)
    token = REQUEST_DEADLINE.set(found.at if found is not None else None)
    try:
        yield
    finally:
        REQUEST_DEADLINE.reset(token)


def _arguments(body: bytes) -> dict:
    arguments = json.loads(body or b"{}")
    if not isinstance(arguments, dict):
        raise flight.FlightServerError("a request's arguments must be a JSON object")
    return arguments


def claim(address: str, timeout: float) -> int | None:
    """The store's claim (an flock beside the socket), or None when a live server already holds it and answers.

    A holder that does not answer is closing or dying: wait for it to let go, then serve.
    """
    fd = os.open(f"{address}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    if not flocks.take(fd, timeout, give_up=lambda: answers(address), every=0.05):
        os.close(fd)
        return None
    os.ftruncate(fd, 0)  # empty until this server listens: see announce()
    return fd


def announce(fd: int) -> None:
    """Write the pid into the claimed lock file: from now on clients know the server listens (core.remote.answers)."""
    os.pwrite(fd, str(os.getpid()).encode(), 0)


def serve(path: Path, idle_exit: float, timeout: float) -> int:
    path = Path(path).resolve()
    address = address_for(path)
    fd = claim(address, timeout)
    if fd is None:
        log.info("another server owns %s; leaving it to that one", path)
        return 0
    if os.path.exists(address):  # left by a server that was killed: clients must not take it for a live one
        os.unlink(address)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    settings = get_settings()
    # Answers are short and the committer's batches long: let a waiting request thread take the interpreter after
    # 0.5 ms rather than Python's 5 ms, or a start_run answered from memory waits out a batch being applied.
    sys.setswitchinterval(SWITCH_INTERVAL)
    store = DuckDBStore(path, dataset_roots=settings.allowed_dataset_roots)
    try:
        _ = store.db  # open (and migrate) before listening: a client that gets an answer gets it from an open store
        os.umask(0o077)  # the socket is created 0600: only this user may send the store operations
        server = StoreServer(store, address, settings.read_cache_mb * 2**20)
        announce(fd)
        log.info("serving %s on %s (pid %s)", path, address, os.getpid())
        journals = store.data_dir / "journal"
        next_scan = 0.0
        while not stopping.is_set() and not server.fatal.is_set() and server.idle_for() < idle_exit:
            if time.monotonic() >= next_scan:
                _replay(store, journals)
                next_scan = time.monotonic() + JOURNAL_SCAN
            stopping.wait(POLL)
        withdraw(fd, address)
        _shut_down(server)
        if not server.fatal.is_set():  # an invalidated database takes nothing more: the next server replays them
            _replay(store, journals)
        if server.cache is not None:
            log.info("read cache: %d answers from the cache, %d read anew", server.cache.hits, server.cache.misses)
    finally:
        try:
            store.close()
        except duckdb.Error:  # an invalidated database may refuse its last checkpoint: opening it again recovers
            log.exception("closing %s failed", path)
        os.close(fd)
    return 0


def withdraw(fd: int, address: str) -> None:
    """From now on clients find no server here and start another, which waits for this one's claim."""
    os.ftruncate(fd, 0)
    try:
        os.unlink(address)
    except FileNotFoundError:
        pass


_closing: list[StoreServer] = []  # a closed server's object must outlive serve(): deleting it waits for stalled calls


def _shut_down(server: StoreServer) -> None:
    """Stop listening and let the requests in progress finish; a client stalled mid-upload (paused, say) is not
    waited for past DRAIN seconds: its batch was never handed to the store, and its writer keeps it to send again."""
    _closing.append(server)
    closing = threading.Thread(target=server.shutdown, name="tunedeck-shutdown", daemon=True)
    closing.start()
    closing.join(DRAIN)


def _replay(store: DuckDBStore, folder: Path) -> None:
    try:
        replayed = journal.recover(store, folder)
    except Exception:
        log.exception("replaying the metric journals in %s failed; trying again later", folder)
        return
    if replayed:
        log.info("replayed %d metric points that killed writers had journaled", replayed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--idle-exit", type=float, default=60.0)
    parser.add_argument("--lock-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return serve(args.path, args.idle_exit, args.lock_timeout)


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    os._exit(code)  # not sys.exit: a request thread stalled past DRAIN must not keep the process alive
