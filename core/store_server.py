"""The store server: one process keeps the DuckDB file open and runs the other processes' SQL.

DuckDB lets one process hold a file at a time and opening it costs ~17 ms. Opening per
operation lets the app, the workers and training scripts share the file but pays that cost on
every read; this server pays it once. The first process that needs the store starts it
(`core.remote.connect` with `idle_exit`); everyone sends statements over a Unix socket beside
the store, one connection per operation. A write operation holds the server's write lock from
its first statement to COMMIT, so writes stay one at a time as before; reads run in their own
snapshot beside them.

A client that dies mid-operation closes its socket and its transaction is rolled back. After
`--idle-exit` seconds with no operation (counted from when it starts listening) the server
closes the file and exits; the next operation starts another.

    python -m core.store_server data/tunedeck.duckdb --idle-exit 60
"""

import argparse
import fcntl
import logging
import os
import signal
import socket
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

import duckdb
import pyarrow as pa

from core.db import open_for_server
from core.errors import StoreBusyError
from core.remote import address_for, table_bytes
from core.sql import arrow_table

log = logging.getLogger("tunedeck.store_server")
IDLE_POLL = 0.2  # how often the server checks whether it has been idle long enough to exit
MAX_CLIENTS = 256  # operations served at once; more wait in the socket's backlog for a thread
SPARE_THREADS = 2  # threads kept waiting in accept(), so a lone client never waits for a thread to start
ACCEPT_RETRY = 0.05  # seconds before a thread tries accept() again after it failed (out of file descriptors, say)
DRAIN_POLL = 0.05  # how long a closing server waits for clients that found its socket just before it went


class StoreServer:
    def __init__(self, path: Path, idle_exit: float, lock_timeout: float = 60.0):
        self.path = Path(path).resolve()
        self.address = address_for(self.path)
        self.idle_exit = idle_exit
        self.lock_timeout = lock_timeout
        self.write_lock = threading.Lock()
        self._state = threading.Lock()
        self._active = 0
        self._last_seen = time.monotonic()
        self._stopping = False  # set to stop: by a signal, or by DuckDB refusing all work after a fatal error
        self._threads: set[threading.Thread] = set()
        self._waiting = 0  # threads blocked in accept()
        self._closing = False  # set once the listener is shut down
        self._accepted = 0

    def serve(self) -> int:
        claim = self._claim()
        if claim is None:
            return 0  # another server holds the claim: it serves this store
        self.db = open_for_server(self.path, self.lock_timeout)
        self.listener = self._listen()
        self._last_seen = time.monotonic()  # idle from now, not from before a slow open
        try:
            while not self._should_close():
                with self._state:
                    if self._waiting == 0:  # at start, or after a thread could not be started
                        self._add_thread()
                time.sleep(IDLE_POLL)
            _unlink(self.address)  # new clients stop finding the server; those already knocking are served
            while True:
                accepted = self._accepted
                time.sleep(DRAIN_POLL)
                if self._accepted == accepted:
                    break
        finally:
            self._stop_threads()
            self.listener.close()
            _unlink(self.address)
            self.db.close()
            os.close(claim)
        return 0

    def _stop_threads(self) -> None:
        """Wake the threads waiting in accept() and wait for the others to finish their clients."""
        self._closing = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # on Linux, a blocked accept() then fails at once
        except OSError:
            pass
        while True:
            with self._state:
                threads = [thread for thread in self._threads if thread.is_alive()]
            if not threads:
                return
            for thread in threads:
                thread.join()

    def _add_thread(self) -> None:
        """Called with `_state` held: the new thread cannot count itself in or out before it is counted."""
        if len(self._threads) >= MAX_CLIENTS:
            return  # the next client waits in the backlog until a thread is free
        thread = threading.Thread(target=self._accept_and_serve, name="store-client", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # the system has no thread to give: the threads there are keep serving
            log.exception("could not start a thread for the next client")
            return
        self._threads.add(thread)
        self._waiting += 1

    def _accept_and_serve(self) -> None:
        """Each thread accepts a client and serves it itself: no hand-off between threads on the way in.

        Linux wakes one thread per connection for a blocking accept(). The thread that takes the
        last waiting place starts another, so the next client finds one waiting too.
        """
        waiting = True
        try:
            while True:
                try:
                    sock, _ = self.listener.accept()
                except OSError:
                    if self._closing:  # the listener was shut down
                        break
                    log.exception("accept() failed; trying again")  # out of file descriptors, say: it passes
                    time.sleep(ACCEPT_RETRY)
                    continue
                with self._state:
                    self._waiting -= 1
                    waiting = False
                    self._active += 1
                    self._accepted += 1
                    if self._waiting == 0:
                        self._add_thread()
                self._serve_client(sock)
                with self._state:
                    if self._waiting >= SPARE_THREADS:
                        break
                    self._waiting += 1
                    waiting = True
        finally:
            with self._state:
                if waiting:
                    self._waiting -= 1
                self._threads.discard(threading.current_thread())

    def _claim(self) -> int | None:
        """The store's claim (an flock), or None when a live server holds it and answers.

        A holder that does not answer is closing or dying: wait for it to let go, then serve.
        """
        fd = os.open(f"{self.address}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if _answers(self.address) or time.monotonic() > deadline:
                    os.close(fd)
                    return None
                time.sleep(0.01)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # who holds the store, for operators and tests
        return fd

    def _listen(self) -> socket.socket:
        _unlink(self.address)  # left by a server that was killed; we hold the claim now
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o077)  # only this user may talk to the store
        try:
            listener.bind(self.address)
        finally:
            os.umask(old_umask)
        listener.listen(64)
        return listener

    def stop(self, *_signal) -> None:
        """Finish the operations in progress, then close the file and exit (SIGTERM and Ctrl-C do this)."""
        self._stopping = True

    def _should_close(self) -> bool:
        with self._state:
            idle = self._active == 0 and time.monotonic() - self._last_seen > self.idle_exit
            return idle or self._stopping

    def _serve_client(self, sock: socket.socket) -> None:
        conn = session = None
        try:
            sock.setblocking(True)
            conn = Connection(sock.detach())
            session = Session(self.db.cursor(), self.write_lock)
            while True:
                try:
                    request = conn.recv()
                except (EOFError, OSError):
                    break
                table = None
                try:
                    answer = ("ok", session.run(*request))
                    if isinstance(answer[1], pa.Table):
                        answer, table = ("table", None), table_bytes(answer[1])
                except duckdb.FatalException as error:
                    self._stopping = True  # close, and let the next operation start a server that reopens the file
                    answer = ("error", error)
                except Exception as error:  # noqa: BLE001 - every failure goes back to the client that caused it
                    answer = ("error", error)
                try:
                    conn.send(answer)
                    if table is not None:
                        conn.send_bytes(table)
                except (OSError, ValueError):
                    break
        except Exception:  # noqa: BLE001 - a client's line failing must not stop the server
            log.exception("a client connection failed")
        finally:
            try:
                if session is not None:
                    session.close()
                if conn is not None:
                    conn.close()
            finally:
                with self._state:
                    self._active -= 1
                    self._last_seen = time.monotonic()


class Session:
    """One client operation on its own cursor; a write holds the write lock until it ends."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, write_lock: threading.Lock):
        self.cursor = cursor
        self.write_lock = write_lock
        self.writing = False
        self.in_transaction = False

    def run(self, operation: str, *args):
        if operation == "begin":  # ("begin", write, timeout, first statement): one round trip for both
            write, timeout, first = args
            self.begin(write, timeout)
            return self.run(*first)
        if operation == "rows":
            return self.cursor.execute(*args).fetchall()
        if operation == "table":  # answered as an Arrow IPC stream after a ("table", None) header
            return arrow_table(self.cursor, *args)
        if operation == "register":
            self.cursor.register(*args)
            return None
        if operation == "unregister":
            self.cursor.unregister(*args)
            return None
        if operation == "commit":
            self.cursor.commit()
            self.end()
            return None
        if operation == "rollback":
            self.rollback()
            return None
        raise ValueError(f"unknown store server operation {operation!r}")

    def begin(self, write: bool, timeout: float) -> None:
        if write:
            if not self.write_lock.acquire(timeout=timeout):
                raise StoreBusyError(
                    f"another write held the store for {timeout:.0f} s; check for a stuck process or raise TUNEDECK_LOCK_TIMEOUT"
                )
            self.writing = True
        self.cursor.begin()
        self.in_transaction = True

    def rollback(self) -> None:
        if self.in_transaction:
            try:
                self.cursor.rollback()
            except duckdb.Error:
                pass  # already aborted by the failure the client is handling
        self.end()

    def end(self) -> None:
        self.in_transaction = False
        if self.writing:
            self.writing = False
            self.write_lock.release()

    def close(self) -> None:
        self.rollback()
        try:
            self.cursor.close()
        except duckdb.Error:
            pass


def _answers(address: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(address)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _unlink(address: str) -> None:
    try:
        os.unlink(address)
    except FileNotFoundError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Keep a TuneDeck store open and serve other processes' SQL.")
    parser.add_argument("store", type=Path)
    parser.add_argument("--idle-exit", type=float, default=60.0, help="seconds without connections before exiting")
    parser.add_argument("--lock-timeout", type=float, default=60.0, help="seconds to wait for the file and for writes")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = StoreServer(options.store, options.idle_exit, options.lock_timeout)
    signal.signal(signal.SIGTERM, server.stop)
    signal.signal(signal.SIGINT, server.stop)
    return server.serve()


if __name__ == "__main__":
    sys.exit(main())
