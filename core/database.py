"""The one place that opens the DuckDB file, held by one process (the store's owner) for as long as it runs.

DuckDB lets one process hold a file at a time, so one process owns it (`core.store_server`) and every
other process asks that owner for whole operations (`core.remote`). Inside the owner, reads run on
lent cursors and never wait for other writes; writes are handed to one committer thread, which runs
whatever has queued up meanwhile in one transaction (group commit): under load, many small writes
share one commit instead of each paying for its own. Run starts and ends may be answered before
they are applied (`core.lifecycle`): the committer applies them first in its next group, and a read
waits for those answered before it.
"""

import contextvars
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import duckdb

from core.errors import StoreBusyError, StoreError, TuneDeckError
from core.lifecycle import MAX_PENDING, Begin, End, EventLog, Lane
from core.migrations import migrate
from core.sql import first
from core.status import RunStatus

T = TypeVar("T")
log = logging.getLogger("tunedeck.database")
MAX_GROUP = 256  # writes in one transaction at most
MAX_POINT_VERSIONS = 100_000  # runs whose last change of points is remembered; past that, all count as changed
_open_here: set[Path] = set()  # the files this process holds open, each by one Database
_opening = threading.Lock()
WAKE = object()  # put on the queue when events wait to be applied: within APPLY_AFTER, or with the next write
NOW = object()  # put on the queue by a read waiting for events: apply them at once
UPKEEP_IDLE = 0.5  # seconds of no writes before upkeep (core.overviews) runs a pass
UPKEEP_BUSY = 5.0  # seconds upkeep may wait for an idle moment before it runs a pass between writes
UPKEEP_RETRY = 60.0  # seconds a failed upkeep pass waits before it is tried again
APPLY_AFTER = 0.2  # seconds answered events may wait to be applied with more: a batch costs ~10 statements, whatever its size
# When the client of the request being served gives up waiting (time.monotonic(), the same clock in every process
# here), set by the store server: a write it would queue later, or a run event it would answer later, is refused, so one
# a client gave up on and sent again is never applied after its newer copy (its points would overwrite the later word on their steps).
REQUEST_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("request_deadline", default=None)
Apply = Callable[["Database", duckdb.DuckDBPyConnection, list], None]
# One pass of work that changes no answer, on the runs named (None: every run); True when more is due.
Upkeep = Callable[[duckdb.DuckDBPyConnection, list[int] | None], bool]


def _refuse_if_late() -> None:
    deadline = REQUEST_DEADLINE.get()
    if deadline is not None and time.monotonic() > deadline:
        raise StoreBusyError("the store took longer than its client waited; the write was not applied")


FATAL = "FATAL Error"  # how DuckDB's errors that invalidate the database begin


def is_fatal(error: BaseException) -> bool:
    """DuckDB invalidated the open database (a checkpoint it could not write to a full disk, say): only opening the
    file again brings it back. Only DuckDB's own error counts (itself, or what a StoreError was made from): a message
    of ours that quotes a name someone typed never does."""
    found = error if isinstance(error, duckdb.Error) else error.__cause__
    return isinstance(found, duckdb.FatalException) or (isinstance(found, duckdb.Error) and str(found).startswith(FATAL))


def store_error(path: Path, error: duckdb.Error) -> StoreError:
    text = str(error)
    if is_fatal(error):
        fatal = StoreError(
            f"the store at {path} stopped after a fatal error and is opened again on the next request; try again "
            f"in a moment ({text.splitlines()[0]})"
        )
        fatal.__cause__ = error  # what the store server looks at (is_fatal), whichever thread raises it
        return fatal
    if "read-only mode" in text or "read_only" in text.lower():
        return StoreError(f"the store at {path} is on a read-only file system: it can be read, not written")
    return StoreError(f"the store at {path} failed: {text}")


def _holder(lock_error: str) -> str:
    """Who holds the file, from DuckDB's "Conflicting lock is held in <program> (PID <n>)", and what to do about it."""
    found = re.search(r"\(PID (\d+)\)", lock_error)
    pid = int(found.group(1)) if found else None
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (OSError, TypeError):
        command = ""
    if "core.store_server" in command:
        return (
            f"in use by its store server (pid {pid}), which the app, a worker or a script started: it exits once nothing "
            "has used it for TUNEDECK_STORE_SERVER_IDLE_EXIT seconds, so stop the app and workers that use it and try "
            "again (an auto-started worker exits after TUNEDECK_WORKER_IDLE_EXIT seconds idle)"
        )
    holder = f"pid {pid}: {command[:200]}" if command else f"pid {pid}" if pid else "unknown"
    return f"held by another process ({holder}); open it with core.open_store(), which talks to the process that holds it"


def open_file(path: Path) -> tuple[duckdb.DuckDBPyConnection, bool]:
    """The file opened for writing (read-only when its folder is), migrated; and whether it is read-only."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file where a folder should be, a read-only or immutable parent, /proc
        raise StoreError(f"cannot make the store's folder {path.parent}: {error.strerror or error}") from None
    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException as error:
        text = str(error)
        if "Conflicting lock" in text or "Could not set lock" in text:
            raise StoreBusyError(f"the store at {path} is {_holder(text)}") from None
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

    def __init__(self, path: Path | str, apply_events: Apply | None = None, fsync: bool = False, upkeep: Upkeep | None = None):
        self.path = Path(path).resolve()
        with _opening:  # DuckDB would let this process open the file twice; two owners would hand out the same run IDs
            if self.path in _open_here:
                raise StoreBusyError(
                    f"the store at {self.path} is open in this process already; use that store object, or close it first"
                )
            self._con, self.read_only = open_file(self.path)
            _open_here.add(self.path)
        try:
            self._start(apply_events, fsync, upkeep)
        except BaseException:
            self._con.close()
            _open_here.discard(self.path)
            raise

    def _start(self, apply_events: Apply | None, fsync: bool, upkeep: Upkeep | None) -> None:
        self.lane = Lane()
        self._upkeep = None if self.read_only else upkeep
        self._upkeep_due: float | None = time.monotonic() if self._upkeep else None  # since when, or None
        self._upkeep_runs: set[int] | None = None  # runs a pass must look at; None: all of them (at open)
        self._upkeep_touched: set[int] = set()  # runs the transaction being committed ends or adds points to
        self._upkeep_not_before = 0.0  # after a failed pass
        self._taking = threading.Lock()
        self._apply_events = None if self.read_only else apply_events
        self.log = EventLog(self.path, fsync) if self._apply_events else None
        self._closing = threading.Event()
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []  # every read connection made, to close with the file
        self._idle: list[duckdb.DuckDBPyConnection] = []  # those not lent to a read right now
        self._cursors_lock = threading.Lock()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._queued = 0  # writes put on the queue and not yet taken with the lane's events (under lane.changed)
        self._closed = False
        self._stopping = threading.Lock()  # close() and the writes it must not strand
        self.groups = 0  # transactions committed, for tests and benchmarks that check grouping
        self.writes = 0
        self.generation = 0  # moves on after every commit: what a reader saw before it may be stale (core.read_cache)
        self._point_versions: dict[int, int] = {}  # run ID -> the generation that last changed its points
        self._points_floor = 0  # every run's points may have changed in this generation (the map was emptied)
        self._points_touched: set[int] = set()  # runs whose points the transaction being committed changes
        if self.log is not None:
            self._replay_log()  # before anything is answered: this object is not anyone's yet
        self._committer = threading.Thread(target=self._commit_loop, name="tunedeck-committer", daemon=True)
        self._committer.start()

    # -- reads -----------------------------------------------------------------------------
    @contextmanager
    def reader(self, settled: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one read: this thread's open snapshot's, else an idle one lent for the read (each
        statement sees the last committed state, and the run events answered before it: unless `settled` is
        False, for the checks made before answering one). Lent, not kept per thread: the store server's gRPC runs
        each request on a thread of its own, so a connection per thread was a new one per request, never closed."""
        held = getattr(self._local, "snapshot", None)
        if held is not None:
            yield held
            return
        if settled:
            self.settle()
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
        self._upkeep_touched.update(run_ids)

    def touch_ended(self, run_ids) -> None:
        """Called inside a write (on the committer thread) that ends these runs: upkeep looks at them next, and their
        curves count as changed (a running run's are bucketed otherwise: core.overviews)."""
        self._upkeep_touched.update(run_ids)
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
        if self._upkeep is not None and self._upkeep_touched:  # heartbeats, tags, renames: nothing for upkeep
            if self._upkeep_runs is not None:
                self._upkeep_runs |= self._upkeep_touched
            if self._upkeep_due is None:
                self._upkeep_due = time.monotonic()
        self._upkeep_touched = set()

    def write(self, op: Callable[[duckdb.DuckDBPyConnection], T], quiet: bool = False) -> T:
        """Run op in a transaction on the committer thread and return what it returns (or raise what it raises).

        `quiet`: op changes no run's status, no experiment's name or liveness and takes no run ID (points, a
        heartbeat), so run events may go on being answered from memory while it runs."""
        if threading.current_thread() is self._committer:
            return op(self._con)  # an operation built from others: it is already inside the transaction
        done: Future = Future()
        with self._stopping:  # queued before close()'s stop or refused: never behind it, where nothing would answer
            if self._closed:
                raise StoreError(f"the store at {self.path} was closed in this process; open it again")
            _refuse_if_late()  # checked and queued at one moment (the lock)
            with self.lane.changed:
                self._queued += 1
            self._queue.put((op, done, quiet))
        return done.result()

    # -- run events answered before they are applied (core.lifecycle) --------------------------
    @property
    def answers_early(self) -> bool:
        return self.log is not None and not self._closed

    def settle(self) -> None:
        """Wait until the run events answered so far are applied (the committer's own reads see its transaction)."""
        if self.log is not None and threading.current_thread() is not self._committer and self.lane.pending:
            self._queue.put(NOW)
            self.lane.settle(self._closing)

    @property
    def writes_queued(self) -> bool:
        """Whether writes wait on the queue that the events answered now would be applied ahead of (read it under
        lane.changed, as `defer`'s build does)."""
        return self._queued > 0

    def run_ids_ready(self) -> bool:
        """Take the next run ID from the sequence when the lane has none (after another write, or at first)."""
        with self._taking:  # one take at a time: a second would leave its value unused (a gap in the IDs)
            if self.lane.next_id is None:

                def take(con) -> None:
                    (value,) = first(con, "SELECT nextval('run_ids')")
                    with self.lane.changed:
                        self.lane.next_id = self.lane.highest_taken = value

                self.write(take, quiet=True)
        return self.lane.next_id is not None

    def defer(self, epoch: int, build: Callable[[Lane], Begin | End | None]) -> Begin | End | None:
        """Log and queue the event `build` makes from the lane's state, if nothing changed since `epoch`; None when
        the caller must take the ordinary path instead."""
        lane = self.lane
        with lane.changed:
            if lane.epoch != epoch or self._closed or len(lane.events) >= MAX_PENDING:
                return None
            _refuse_if_late()
            event = build(lane)
            if event is None:
                return None
            try:
                self.log.append(event)
            except StoreError:
                log.warning("the run events' log beside %s cannot take more; answering the ordinary way", self.path)
                if isinstance(event, Begin):
                    lane.next_id = event.run_id  # not handed out after all
                return None
            lane.events.append(event)
            lane.answered += 1
            lane.runs[event.run_id] = RunStatus.RUNNING if isinstance(event, Begin) else event.status
            wake = len(lane.events) == 1
        if wake:
            self._queue.put(WAKE)
        return event

    def sync_run_ids(self, con: duckdb.DuckDBPyConnection, highest: int) -> None:
        """Move the run ID sequence past the IDs handed out from memory (its values are never given back, even by a
        rollback), so the ordinary path's nextval and the next owner never hand one out again."""
        lane = self.lane
        if lane.next_id is None:  # replaying a log at open: the sequence was not read yet
            (value,) = first(con, "SELECT nextval('run_ids')")
            lane.next_id = lane.highest_taken = value
        if highest > lane.highest_taken:
            first(con, "SELECT max(nextval('run_ids')) FROM range(?)", [highest - lane.highest_taken])
            lane.highest_taken = highest
        with lane.changed:
            lane.next_id = max(lane.next_id, highest + 1)

    def _replay_log(self) -> None:
        """Apply the events a killed owner had answered and not committed (and any set aside before: they are tried
        again), before this one answers anything; applying an event twice changes nothing."""
        events = self.log.left_behind()
        if events:
            sealed = self.log.seal()
            kept = self._apply_alone(events)
            self._applied([], sealed, kept)
            log.info("applied %d run events an owner had answered", len(events))
        self.lane.next_id = None  # taken from the sequence again when needed

    # -- the committer ---------------------------------------------------------------------------
    def _commit_loop(self) -> None:
        while True:
            item = self._next()
            if item is WAKE:  # only events so far: give more of them (or a write to carry them) a moment to come
                try:
                    item = self._queue.get(timeout=APPLY_AFTER)
                except queue.Empty:
                    item = NOW
            if item is None:
                self._commit([])  # events answered before close() are applied before the file closes
                return
            if item is NOW or item is WAKE:
                self._commit([])  # by themselves: a read waiting for them does not also wait for the writes queued
                continue
            group = [item]
            while len(group) < MAX_GROUP:
                try:
                    following = self._queue.get_nowait()
                except queue.Empty:
                    break
                if following is None:
                    self._queue.put(None)  # stop after this group
                    break
                if following not in (WAKE, NOW):
                    group.append(following)
            self._commit(group)

    def _next(self):
        """The next item to commit. With upkeep due, a pass of it runs once the queue has stayed empty for
        UPKEEP_IDLE, or between groups once it has waited UPKEEP_BUSY (a store that never idles still gets it)."""
        while self._upkeep_due is not None:
            now = time.monotonic()
            if now >= self._upkeep_not_before and now - self._upkeep_due > UPKEEP_BUSY:
                self._keep_up()
                continue
            try:
                return self._queue.get(timeout=max(UPKEEP_IDLE, self._upkeep_not_before - now))
            except queue.Empty:
                if time.monotonic() >= self._upkeep_not_before:
                    self._keep_up()
        return self._queue.get()

    def _keep_up(self) -> None:
        """One pass of upkeep in a transaction of its own, on the runs ended or given points since the last (all of
        them after opening). It changes no answer, so readers' caches stay. A failure is logged and tried again
        after UPKEEP_RETRY."""
        runs = None if self._upkeep_runs is None else sorted(self._upkeep_runs)
        try:
            self._con.begin()
            more = self._upkeep(self._con, runs)
            self._con.commit()
        except BaseException:
            self._rollback()
            log.exception("store upkeep failed; it is tried again in %.0f s", UPKEEP_RETRY)
            self._upkeep_not_before = time.monotonic() + UPKEEP_RETRY
            return
        if more:
            self._upkeep_due = time.monotonic()
        else:
            self._upkeep_due, self._upkeep_runs = None, set()

    def _commit(self, group: list[tuple[Callable, Future, bool]]) -> None:
        """The events answered so far, then the group, in one transaction. Nothing here may raise or leave anyone
        waiting: a committer that stopped would hold up every writer and reader."""
        holding = any(not quiet for _, _, quiet in group)
        if holding:
            self.lane.hold()  # answers now take the ordinary path, which queues behind this group
        taken: list = []  # the events this group took, until they are applied (or given up on)
        try:
            self._commit_group(group, taken)
        except BaseException:  # a bug, or the log's disk failing: the writes hear of it, and the committer goes on
            log.exception("the committer failed while committing a group")
            for _, done, _ in group:
                if not done.done():
                    done.set_exception(StoreError(f"the store at {self.path} failed while committing; try again"))
        finally:
            if taken:  # not applied, and their log is still on disk: the next owner applies them
                log.error("%d run events could not be applied now; their log stays for the next owner", len(taken))
                if self.log is not None:
                    self.log.forget()  # every sealed segment: so that no later commit deletes one of them
                self.lane.done(taken)
            if holding:
                self.lane.release()

    def _commit_group(self, group: list[tuple[Callable, Future, bool]], taken: list) -> None:
        """If the transaction fails, the events are applied by themselves and each write runs alone, so one bad request
        fails by itself and the others still commit."""
        with self.lane.changed:
            taken.extend(self.lane.take())
            self._queued -= len(group)  # from now on behind every event answered so far
            try:
                sealed = self.log.seal() if self.log is not None else 0
            except OSError:  # the events are applied all the same; their segment stays, and the next owner finds no change
                log.exception("could not close the run events' log beside %s", self.path)
                sealed = 0
        events = list(taken)
        if not events and not group:
            return
        if not events and len(group) == 1:
            self._commit_alone(*group[0][:2])
            return
        try:
            with self._ids_restored():
                self._con.begin()
                if events:
                    self._apply_events(self, self._con, events)
                results = [op(self._con) for op, _, _ in group]
                self._con.commit()
        except BaseException:
            self._rollback()
            kept = self._apply_alone(events)
            for op, done, _ in group:
                self._commit_alone(op, done)
            taken.clear()
            self._applied(events, sealed, kept)
            return
        self._committed(len(group) + bool(events))
        taken.clear()
        self._applied(events, sealed)
        for (_, done, _), result in zip(group, results, strict=True):
            done.set_result(result)

    @contextmanager
    def _ids_restored(self) -> Iterator[None]:
        """A transaction that fails puts the run ID bookkeeping back: the sequence's move went with it (on disk, if not
        in memory), so the next try moves it again."""
        taken, handed = self.lane.highest_taken, self.lane.next_id
        try:
            yield
        except BaseException:
            self.lane.highest_taken = taken
            with self.lane.changed:
                self.lane.next_id = handed if handed is None or self.lane.next_id is None else max(handed, self.lane.next_id)
            raise

    def _applied(self, events: list, sealed: int, kept: bool = False) -> None:
        """The events are in the store (or set aside): their log segments go, unless one could not even be set aside,
        in which case the segments stay on disk for the next owner to apply."""
        if self.log is not None:
            try:
                (self.log.forget if kept else self.log.committed)(sealed)
            except OSError:
                log.exception("could not delete applied run events' log; the next owner applies them again (no change)")
        if events:
            self.lane.done(events)

    def _apply_alone(self, events: list) -> bool:
        """Events a failing write shared a transaction with: by themselves, else one at a time. One the store still
        refuses is set aside in a file beside the store, which the next owner tries again at open, and logged: never
        dropped silently. True when one could not even be set aside (its log must then stay)."""
        if not events:
            return False
        kept = False
        for part in [events] if len(events) == 1 else [events, *([event] for event in events)]:
            try:
                with self._ids_restored():
                    self._con.begin()
                    self._apply_events(self, self._con, part)
                    self._con.commit()
            except BaseException:
                self._rollback()
                if len(part) == 1:
                    try:
                        log.exception("a run event the store had answered cannot be applied now; kept in %s", self.log.set_aside(part))
                    except OSError:
                        log.exception("a run event cannot be applied now, nor set aside; its log stays for the next owner")
                        kept = True
                continue
            self._committed(1)
            if part is events:
                return False
        return kept

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
            done.set_exception(store_error(self.path, error))
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
        """Finish the writes and events already queued, then close every connection (the file's lock goes with them)."""
        with self._stopping:
            self._closed = True
            self._queue.put(None)
        self._committer.join()
        self._closing.set()
        if self.log is not None:
            self.log.close()
        with self._cursors_lock:
            for cursor in self._cursors:
                cursor.close()
            self._cursors.clear()
        self._con.close()
        with _opening:
            _open_here.discard(self.path)
