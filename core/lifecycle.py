"""Run starts and ends answered at once by the store's owner, and applied to DuckDB a batch at a time.

A DuckDB transaction that changes rows costs milliseconds whatever it holds (each statement ~1-3 ms
here), so a script's `start_run` and leaving its block cost ~40 ms as whole transactions of their
own. Instead the owner checks the request against what it knows (the run is running, the experiment
is live), writes it to its event log beside the store file, answers, and hands it to the committer,
which applies every event that queued meanwhile with a few set-based statements (`DuckDBStore.
_apply_lifecycle`), in the same transaction as the next group of writes.

Nothing is seen out of order: every read waits until the events answered before it began are
applied (`Lane.settle`), and every other write is applied after them. While such a write runs, the
facts an answer relies on may be changing, so requests take the ordinary path (one transaction each)
until it commits (`Lane.hold` / `release`, a sequence lock).

Nothing answered is lost: an event is in the log (one `write`, in the kernel's page cache, like the
SDK's metric journal: it survives the owner being killed; `TUNEDECK_JOURNAL_FSYNC=1` also survives the
machine going down) before the answer, and the log is deleted only once DuckDB has committed the
events. An owner that opens the store replays a log left behind; applying an event twice changes
nothing the second time.
"""

import errno
import glob
import io
import json
import logging
import os
import shutil
import struct
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from core.errors import StoreError
from core.status import RunStatus

log = logging.getLogger("tunedeck.lifecycle")
FRAME = struct.Struct("<cI")
MAX_PENDING = 2_000  # events answered but not applied; past that, requests take the ordinary path (they wait)
MAX_KNOWN_RUNS = 10_000  # run statuses remembered between other writes
REFUSED = "refused"  # events the store could not apply, tried again by the next owner
DAMAGED = "damaged"  # a copy of a log segment that could not be read whole, for a person to look at


@dataclass(frozen=True)
class Begin:
    run_id: int
    experiment_id: int
    name: str | None  # None: "run-N", N counted when applied
    config: str
    worker: str
    at: datetime


@dataclass(frozen=True)
class End:
    run_id: int
    status: RunStatus
    error: str | None
    traceback: str | None
    at: datetime
    points: pl.DataFrame | None


def encode(event: Begin | End) -> bytes:
    if isinstance(event, Begin):
        fields = [event.run_id, event.experiment_id, event.name, event.config, event.worker, event.at.isoformat()]
        payload = json.dumps(fields).encode()
        return FRAME.pack(b"b", len(payload)) + payload
    header = json.dumps([event.run_id, event.status.value, event.error, event.traceback, event.at.isoformat()]).encode()
    body = io.BytesIO()
    if event.points is not None:
        event.points.write_ipc_stream(body)
    payload = header + b"\n" + body.getvalue()
    return FRAME.pack(b"e", len(payload)) + payload


def decode(data: bytes) -> tuple[list[Begin | End], bool]:
    """Every whole event of a log segment, and whether all of it could be read. A last event cut short by a kill
    mid-write was never answered; anything else that does not read (a disk's damage) stops the reading there."""
    events: list[Begin | End] = []
    offset = 0
    while offset + FRAME.size <= len(data):
        kind, length = FRAME.unpack_from(data, offset)
        payload = data[offset + FRAME.size : offset + FRAME.size + length]
        if len(payload) < length:
            return events, True
        offset += FRAME.size + length
        try:
            events.append(_event(kind, payload))
        except Exception:
            return events, False
    return events, offset == len(data)


def _event(kind: bytes, payload: bytes) -> Begin | End:
    if kind == b"b":
        run_id, experiment_id, name, config, worker, at = json.loads(payload)
        return Begin(run_id, experiment_id, name, config, worker, datetime.fromisoformat(at))
    if kind != b"e":
        raise ValueError(f"unknown event kind {kind!r}")
    header, _, body = payload.partition(b"\n")
    run_id, status, error, traceback, at = json.loads(header)
    points = pl.read_ipc_stream(io.BytesIO(body)) if body else None
    return End(run_id, RunStatus(status), error, traceback, datetime.fromisoformat(at), points)


class EventLog:
    """The owner's log of answered events: segments beside the store file, deleted once their events are committed."""

    def __init__(self, store_path: Path, fsync: bool = False):
        self.folder = store_path.parent
        self.prefix = f"{store_path.name}.events."
        self.fsync = fsync
        self._fd: int | None = None
        self._size = 0
        self._sealed: list[Path] = []
        self._number = max((self._number_of(path) for path in self.segments()), default=0)

    def segments(self) -> list[Path]:
        try:
            names = [name for name in os.listdir(self.folder) if name.startswith(self.prefix)]
        except FileNotFoundError:
            return []
        numbered = [self.folder / name for name in names if name[len(self.prefix) :].isdigit()]
        return sorted(numbered, key=self._number_of)

    def _number_of(self, path: Path) -> int:
        return int(path.name[len(self.prefix) :])

    def append(self, event: Begin | End) -> None:
        """Add the event whole or not at all: a disk that fills up mid-write leaves the segment as it was."""
        frame = encode(event)
        try:
            if self._fd is None:
                self._number += 1
                self._current = self.folder / f"{self.prefix}{self._number}"
                self._fd = os.open(self._current, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                self._size = 0
            try:
                if os.write(self._fd, frame) != len(frame):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                if self.fsync:
                    os.fsync(self._fd)
            except OSError:
                try:
                    os.ftruncate(self._fd, self._size)
                except OSError:  # a torn frame stays: the segment takes no more, or it would hide the events after it
                    self.seal()
                raise
        except OSError as error:
            raise StoreError(f"cannot keep the run's outcome on disk beside {self.folder}: {error.strerror}") from error
        self._size += len(frame)

    def seal(self) -> int:
        """The current segment takes no more events (the committer is applying them); returns how many are sealed."""
        if self._fd is not None:
            fd, self._fd = self._fd, None  # forgotten first: a close that fails has still let the number go, and
            self._sealed.append(self._current)  # writing on to a number another file now has would corrupt that file
            os.close(fd)
        return len(self._sealed)

    def committed(self, sealed: int) -> None:
        """The first `sealed` sealed segments' events are in the store: delete them."""
        done, self._sealed = self._sealed[:sealed], self._sealed[sealed:]
        for path in done:
            path.unlink(missing_ok=True)

    def forget(self, sealed: int | None = None) -> None:
        """Leave the first `sealed` sealed segments (all of them: None) on disk, for the next owner to apply."""
        self._sealed = self._sealed[sealed:] if sealed is not None else []

    def left_behind(self) -> list[Begin | End]:
        """Events an owner answered and did not commit, and those set aside before (at open, before anything else is
        answered); the files count as sealed, so they go once the events are committed."""
        events = []
        refused = sorted(path for path in self.folder.glob(f"{glob.escape(self.prefix)}{REFUSED}-*") if path.is_file())
        for path in [*self.segments(), *refused]:
            found, whole = decode(path.read_bytes())
            if not whole:
                damaged = path.with_name(f"{self.prefix}{DAMAGED}-{time.time_ns()}")
                shutil.copyfile(path, damaged)
                log.error("%s is damaged after %d events; it is kept as %s for a person to look at", path, len(found), damaged)
            events.extend(found)
            self._sealed.append(path)
        return events

    def set_aside(self, events: list[Begin | End]) -> Path:
        """Events the store could not apply (the disk failing, or a bug: answers were checked): kept in a file of
        their own, which the next owner tries again at open, and which a person can look at."""
        path = self.folder / f"{self.prefix}{REFUSED}-{time.time_ns()}"
        with open(path, "ab") as kept:
            for event in events:
                kept.write(encode(event))
            if self.fsync:  # the events' segment is deleted next: this copy must last as the segment would have
                kept.flush()
                os.fsync(kept.fileno())
        return path

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class Lane:
    """What answers rely on between the committer's groups: events answered and not yet applied, the statuses of runs
    and the live experiments known since the last other write, and run IDs handed out ahead of the sequence."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.events: list[Begin | End] = []
        self.answered = 0
        self.applied = 0
        self.epoch = 0  # odd while another write runs (a sequence lock): answers then take the ordinary path
        self.runs: dict[int, RunStatus] = {}
        self.forgetful = False  # some runs' statuses were let go since the last other write
        self.experiments: dict[str, int] = {}  # live experiments by name
        self.live: set[int] = set()  # live experiment IDs
        self.next_id: int | None = None  # the next run ID to hand out; None until taken from the sequence
        self.highest_taken = 0  # the highest value the run ID sequence has given

    def open_epoch(self) -> int | None:
        """The epoch an answer starts in, or None when another write is running (take the ordinary path)."""
        epoch = self.epoch
        return None if epoch % 2 else epoch

    def hold(self) -> None:
        with self.changed:
            self.epoch += 1

    def release(self) -> None:
        """Another write committed (or failed): what it may have changed is forgotten and read again when needed."""
        with self.changed:
            self.runs.clear()
            self.forgetful = False
            self.experiments.clear()
            self.live.clear()
            self.next_id = None  # it may have taken IDs from the sequence itself
            self.epoch += 1

    def take(self) -> list[Begin | End]:
        with self.changed:
            events, self.events = self.events, []
            return events

    def done(self, events: list[Begin | End]) -> None:
        """The events are applied. Runs that ended stay known until the next other write: a second end_run of the run,
        checked against the store before this one was applied, must still be refused."""
        with self.changed:
            self.applied += len(events)
            if len(self.runs) > MAX_KNOWN_RUNS:  # forget the applied ones, and from now on answer no run not known
                for event in events:
                    if self.runs.get(event.run_id) is (event.status if isinstance(event, End) else RunStatus.RUNNING):
                        del self.runs[event.run_id]
                self.forgetful = True
            self.changed.notify_all()

    def may_end(self, run_id: int) -> bool | None:
        """Whether an end of the run may be answered from memory: True (it runs), False (it ended, or the lane forgot
        runs and does not know it), None (not known: ask the store)."""
        known = self.runs.get(run_id)
        if known is None:
            return False if self.forgetful else None
        return known is RunStatus.RUNNING

    @property
    def pending(self) -> bool:
        return self.applied < self.answered

    def settle(self, closed: threading.Event) -> None:
        """Wait until every event answered before this call is applied: a read then sees them all."""
        with self.changed:
            target = self.answered
            self.changed.wait_for(lambda: self.applied >= target or closed.is_set())
