"""The client side of the store server: every store operation as one Arrow Flight request.

`RemoteStore` is the `TrackingStore` every process but the server uses (`core.open_store()`). Each
primitive of the contract becomes one request: arguments as JSON, answers decoded into the
contract's own return types, frames and metric batches as Arrow. A store error raised in the
server is raised here again, as the same kind with the same message. The first request that
finds no server starts one (`python -m core.store_server`) and sends itself again.
"""

import functools
import hashlib
import inspect
import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from abc import update_abstractmethods
from pathlib import Path

import polars as pl
import pyarrow.flight as flight

from core import errors, flocks
from core.errors import StoreError, StoreUnavailableError, TuneDeckError
from core.run_params import as_json_value
from core.store import REPEATABLE, TrackingStore, operations, return_type

URI_SAFE = re.compile(r"[A-Za-z0-9_./+-]+")
SEND_TRIES = 3
SMALL_BATCH = 10_000  # points sent inside the request (~0.3 MB); a larger batch streams (do_put), ~1 ms more per call
START_TIMEOUT = 60.0  # seconds a new store server may take to open (and migrate) the store
DEADLINE = "tunedeck-deadline"  # a header: when the sender gives up waiting (time.monotonic()); writes after it are refused
SPAWN_RETRY_AFTER = 30.0  # seconds before trying again to start a server that failed to start
CONNECT_OPTIONS = [  # after a server is replaced, reconnect at once rather than after gRPC's default second
    ("grpc.initial_reconnect_backoff_ms", 20),
    ("grpc.max_reconnect_backoff_ms", 200),
    # gRPC also takes this as the time a connection may take to be set up: a busy machine needs seconds, and at 20 ms
    # every connection attempt failed ("timed out before receiving SETTINGS frame") while the server was busy
    ("grpc.min_reconnect_backoff_ms", 10_000),
]
_spawn_lock = threading.Lock()
_spawn_failed: dict[Path, float] = {}
_clients: dict[tuple[int, str], flight.FlightClient] = {}


def address_for(path: Path) -> str:
    """The socket beside the store; in this user's private folder when that path is too long for a socket, has
    characters a Flight URI cannot carry (a space, say), or lies in a read-only folder."""
    beside = f"{path}.sock"
    if len(beside.encode()) < 100 and URI_SAFE.fullmatch(beside) and os.access(Path(path).parent, os.W_OK):
        return beside
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:24]
    return os.path.join(_private_folder(), f"{digest}.sock")


def _private_folder() -> str:
    """A folder only this user can enter: nobody else can plant a socket there for us to talk to."""
    folder = os.environ.get("XDG_RUNTIME_DIR") or os.path.join(tempfile.gettempdir(), f"tunedeck-{os.getuid()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    found = os.lstat(folder)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o077:
        raise StoreError(f"{folder} must be a folder of this user's that others cannot enter (chmod 700)")
    return folder


class RemoteStore(TrackingStore):
    """The store as seen from any process but its server; the primitives are filled in below, one request each."""

    def __init__(self, path: Path | str, *, timeout: float = 60.0, idle_exit: float = 60.0):
        self.path = Path(path).resolve()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # a read-only place: the server will say what it can do there
        self.timeout = timeout
        self.idle_exit = idle_exit

    @property
    def data_dir(self) -> Path:
        return self.path.parent

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def address(self) -> str:
        """Looked up each time: a folder that turns read-only moves the socket to this user's private folder."""
        return address_for(self.path)

    # -- transport -----------------------------------------------------------------------------
    def _request(self, send, repeatable: bool = False):
        """send(client, options); when it reached no server, start one and send again (a server may also have
        left, idle, just as it was sent, or be too busy to take the connection: hence tries until the timeout). A
        request that may have reached a server that then died is sent again only when sending it twice does no
        harm (a read, say)."""
        give_up = time.monotonic() + max(self.timeout, START_TIMEOUT)  # a busy server is no reason to fail a run
        attempt = 0
        while True:
            try:
                return send(self._client(fresh=attempt > 0), self._options())
            except flight.FlightUnavailableError as error:
                if not (repeatable or _never_reached(error)):
                    _clients.pop((os.getpid(), self.address), None)  # its server is gone: the next request connects anew
                    raise _stopped() from error
                if attempt >= SEND_TRIES - 1 and time.monotonic() > give_up:
                    raise StoreUnavailableError(
                        f"the store server for {self.path} does not answer; see {self.data_dir / 'logs' / 'store-server.log'}"
                    ) from error
            attempt += 1
            if attempt >= SEND_TRIES:
                time.sleep(0.1)
            self._start_server()

    def _client(self, fresh: bool = False) -> flight.FlightClient:
        key = (os.getpid(), self.address)  # a forked child must not use its parent's connection
        if fresh or key not in _clients:
            _clients[key] = self._connect()
        return _clients[key]

    def _connect(self) -> flight.FlightClient:
        return flight.FlightClient(f"grpc+unix://{self.address}", generic_options=CONNECT_OPTIONS)

    def _start_server(self) -> None:
        with _spawn_lock:
            if answers(self.address):
                return
            if time.monotonic() - _spawn_failed.get(self.path, -SPAWN_RETRY_AFTER) < SPAWN_RETRY_AFTER:
                raise StoreError(f"the store server for {self.path} failed to start moments ago; see its log")
            process = _spawn(self.path, self.idle_exit, self.timeout)
            deadline = time.monotonic() + max(self.timeout, START_TIMEOUT)
            try:
                while not answers(self.address):
                    if time.monotonic() > deadline or (process.poll() not in (None, 0)):
                        _spawn_failed[self.path] = time.monotonic()
                        log = self.data_dir / "logs" / "store-server.log"
                        refused = _refused_setting()
                        if refused:
                            why = f": it reads every setting, and {refused}"
                        elif log.is_file():
                            why = f"; see {log}"
                        else:  # the folder could not be made or written: a log named there would not exist
                            why = f"; cannot write {self.data_dir} (TUNEDECK_DATA_DIR must name a folder you may write)"
                        raise StoreError(f"could not start the store server for {self.path}{why}")
                    time.sleep(0.005)
            finally:  # reap it whenever it exits, so no zombie is left behind
                threading.Thread(target=process.wait, name="tunedeck-store-server-reaper", daemon=True).start()

    def _action(self, operation: str, arguments: dict, points: pl.DataFrame | None = None):
        body = _json(arguments).encode()
        if points is not None:  # a small batch rides in the request itself: one message instead of a stream
            stream = io.BytesIO()
            points.write_ipc_stream(stream)
            body += b"\n" + stream.getvalue()

        def send(client, options):
            return b"".join(result.body.to_pybytes() for result in client.do_action(flight.Action(operation, body), options))

        return _raising(self._request, send, operation in REPEATABLE)

    def _options(self) -> flight.FlightCallOptions:
        """The call's timeout, and when it runs out as a header (taken just before the call starts, so a little
        early): the server refuses a write it would queue later, which this client sends again. A header, not an
        argument: a server of an older version passes it by."""
        deadline = f"{self._deadline():.6f}".encode()
        return flight.FlightCallOptions(timeout=self.timeout, headers=[(DEADLINE.encode(), deadline)])

    def _deadline(self) -> float:
        """When this client stops waiting for the call about to be sent (on the time.monotonic() clock)."""
        return time.monotonic() + self.timeout

    def _table(self, operation: str, arguments: dict) -> pl.DataFrame:
        ticket = flight.Ticket(_json({"operation": operation, **arguments}).encode())
        table = _raising(self._request, lambda client, options: client.do_get(ticket, options).read_all(), True)
        return pl.from_arrow(table)

    def _put(self, operation: str, arguments: dict, points: pl.DataFrame):
        request = {"operation": operation, "rows": points.height, **arguments}
        descriptor = flight.FlightDescriptor.for_command(_json(request))
        table = points.to_arrow()

        def send(_, options):
            # gRPC's deadline does not end a stream blocked on a stalled server (a paused one: its window stays full);
            # closing the connection just after the deadline does, and the call then fails as timed out. A connection
            # of its own: no other call goes with it.
            own = self._connect()
            deadline = threading.Timer(self.timeout + 0.1, own.close)
            deadline.start()
            try:
                writer, reader = own.do_put(descriptor, table.schema, options)
                with writer:
                    writer.write_table(table, max_chunksize=65_536)
                    writer.done_writing()
                    answer = reader.read()
            finally:
                deadline.cancel()
                own.close()
            return answer.to_pybytes() if answer is not None else b"null"

        return _raising(self._request, send, operation in REPEATABLE)


def _json(arguments: dict) -> str:
    """A request's arguments as JSON. A model goes as its fields, a date in ISO form; any other value JSON has no form
    for (a path, any object in a run's params) travels as its text, which is what the store keeps of it in process
    too (`json.dumps(default=str)`)."""
    try:
        return json.dumps(arguments, default=_jsonable)
    except TypeError:  # a key JSON cannot carry (a path as a param's name, say) goes as its text too
        return json.dumps(_jsonable(arguments))


def _jsonable(value):
    from pydantic_core import to_jsonable_python  # only for what plain JSON cannot carry: a cold read never needs it

    return to_jsonable_python(value, fallback=as_json_value)


def _raising(request, send, repeatable: bool = False):
    """The request's answer, or the store error the server raised, as the same kind with the same message."""
    try:
        return request(send, repeatable)
    except flight.FlightError as error:
        raise _as_store_error(error) from None


def _as_store_error(error: flight.FlightError) -> TuneDeckError:
    if isinstance(error, flight.FlightTimedOutError):
        return errors.StoreBusyError("the store did not answer in time (busy, or its server paused); try again in a moment")
    try:
        payload = json.loads(error.extra_info)
    except (TypeError, ValueError):
        return StoreError(f"the store server failed: {str(error).splitlines()[0].split('. Detail:')[0]}")
    kind = getattr(errors, payload.get("type", ""), None)
    if not (isinstance(kind, type) and issubclass(kind, TuneDeckError)):
        kind = StoreError
    if kind is errors.ValidationError:
        return kind(payload["message"], payload.get("fields") or {})
    return kind(payload["message"])


def _never_reached(error: flight.FlightUnavailableError) -> bool:
    """Whether the request failed before reaching any server (so sending it again cannot run it twice)."""
    text = str(error)
    return "failed to connect" in text or "connect failed" in text or "No such file" in text


def _stopped() -> StoreError:
    return errors.OwnerLostError(
        "the store server stopped in the middle of an operation (was it killed?); nothing of the operation "
        "was saved unless it had committed, and the next operation starts a new server"
    )


def _remote(operation: str):
    """A contract primitive as one request: a frame comes back as Arrow, points go out as Arrow (inside the request
    when the batch is small), the rest as JSON."""
    contract = getattr(TrackingStore, operation)
    signature = inspect.signature(contract)
    returns = signature.return_annotation  # text: the contract's types are imported only when an answer needs them

    @functools.wraps(contract)
    def call(self, *args, **kwargs):
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError as error:
            raise errors.ValidationError(f"{operation}(): {error}") from None
        arguments = {name: value for name, value in bound.arguments.items() if name != "self"}
        if returns == "pl.DataFrame":
            return self._table(operation, arguments)
        points = arguments.pop("points", None)
        if isinstance(points, pl.DataFrame) and points.height <= SMALL_BATCH:
            answer = self._action(operation, arguments, points)
        elif isinstance(points, pl.DataFrame):
            answer = self._put(operation, arguments, points)
        else:
            if points is not None:
                raise errors.ValidationError(f"points must be a Polars DataFrame, got {type(points).__name__}")
            answer = self._action(operation, arguments)
        return None if returns == "None" else _decoder(operation).validate_json(answer)  # JSON straight into the types

    call.__isabstractmethod__ = False  # wraps() copied the contract's mark along with its name and docs
    return call


@functools.cache
def _decoder(operation: str):
    from pydantic import TypeAdapter

    return TypeAdapter(return_type(operation))


for _operation in operations():
    setattr(RemoteStore, _operation, _remote(_operation))
update_abstractmethods(RemoteStore)


# -- finding, starting and stopping the server ----------------------------------------------------
def answers(address: str) -> bool:
    """Whether a server holds the store's claim and listens: it writes its pid into the claim once it does.
    (A probe that keeps no server awake.)"""
    lock = f"{address}.lock"
    try:
        announced = os.path.getsize(lock) > 0
    except OSError:
        return False
    return announced and os.path.exists(address) and flocks.held(lock)


def running(path: Path) -> bool:
    """Whether a server holds the store's claim."""
    return flocks.held(f"{address_for(Path(path).resolve())}.lock")


def _refused_setting() -> str | None:
    """Why the settings the server reads (all of them, where a reader reads three) are refused, if they are: said to
    the caller, not only in the server's log. Pydantic is imported only on this failure."""
    from core.settings import get_settings

    try:
        get_settings()
    except TuneDeckError as error:
        return str(error)
    return None


def _spawn(path: Path, idle_exit: float, timeout: float) -> subprocess.Popen:
    logs = path.parent / "logs"
    try:
        logs.mkdir(parents=True, exist_ok=True)
        log = open(logs / "store-server.log", "ab")  # noqa: SIM115 - the child keeps it
    except OSError:
        log = subprocess.DEVNULL
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "core.store_server", str(path), "--idle-exit", str(idle_exit)]
    command += ["--lock-timeout", str(max(timeout, START_TIMEOUT))]  # a closing server may take a while to let go
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    try:
        return subprocess.Popen(
            command, cwd=os.getcwd(), env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    except OSError as error:
        raise StoreError(f"could not start the store server for {path}: {error}") from error
    finally:
        if log is not subprocess.DEVNULL:
            log.close()


def stop(path: Path, timeout: float = 15.0) -> bool:
    """Ask the store's server to finish what it is doing and exit; True once it has exited (file closed)."""
    address = address_for(Path(path).resolve())
    pid = None
    if flocks.held(f"{address}.lock"):
        try:
            pid = int(Path(f"{address}.lock").read_text())
            if b"core.store_server" in Path(f"/proc/{pid}/cmdline").read_bytes():  # not a reused pid
                os.kill(pid, signal.SIGTERM)
        except (ValueError, OSError):
            pass  # it exited between the probe and the signal, or a new server has not written its pid yet
    deadline = time.monotonic() + timeout
    while flocks.held(f"{address}.lock") or (pid is not None and process_alive(pid)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def process_alive(pid: int) -> bool:
    """Whether the process still runs (a zombie has exited and holds no files)."""
    try:
        return " Z" not in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:3]
    except (FileNotFoundError, ProcessLookupError, IndexError):  # ProcessLookupError: it exited while being read
        return False
