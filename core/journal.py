"""Metric points on local disk from the moment `log()` returns until the store has them.

A writer appends every logged call to its current segment file (one `write`, no fsync by default:
the bytes are in the kernel's page cache, so they survive the logging process being killed at any
moment; `TUNEDECK_JOURNAL_FSYNC=1` also survives the machine going down, at the cost of an fsync per
call). A flush seals the segment; once the store has committed the batch the sealed segments are
deleted. A writer holds an flock on each segment it has not deleted, so `recover()` (run by the
store server every few seconds; in team mode, where no owner of ours runs, by each worker every few
seconds and by the first writer of each process: `recover_soon`) knows a segment whose lock is free
belongs to a writer that died, and replays it. Replaying is safe twice: logging a (run, key, step)
again replaces the value.

Frames: one byte kind, a 4-byte length, the payload. `p`: one log() call as JSON
`[run_id, step, wall_time_us, {key: value}]`; `s`: one log_series() call as a JSON header line then
the steps, values and wall times as little-endian int64 / float64 / int64 arrays.
"""

import errno
import fcntl
import itertools
import json
import logging
import os
import socket
import struct
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import polars as pl

from core.errors import NotFoundError, StoreBusyError, StoreError
from core.points import POINT_SCHEMA
from core.store import TrackingStore

log = logging.getLogger("tunedeck.journal")
FRAME = struct.Struct("<cI")
SUFFIX = ".points"
REFUSED = ".refused"  # a segment the store refused for good, kept aside (recover() passes it by)
NEW_GRACE_S = 60.0  # an unlocked segment still being created is removed by recover() only once this old
_counter = itertools.count()


class Segment:
    """One journal file, locked by the writer that appends to it until the store has its points."""

    def __init__(self, folder: Path, fsync: bool):
        folder.mkdir(parents=True, exist_ok=True)
        self.fd, self.path = _created(folder)
        self.fsync = fsync
        self.size = 0

    def append(self, kind: bytes, payload: bytes) -> None:
        """Add a frame whole or not at all: a disk that fills up mid-frame leaves the segment as it was."""
        frame = FRAME.pack(kind, len(payload)) + payload
        try:
            if os.write(self.fd, frame) != len(frame):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            if self.fsync:
                os.fsync(self.fd)
        except OSError as error:
            try:
                os.ftruncate(self.fd, self.size)
            except OSError:
                pass
            raise StoreError(f"cannot keep the logged points on disk in {self.path.parent}: {error.strerror}") from error
        self.size += len(frame)

    def delete(self) -> None:
        """The store has these points: remove the file, then let go of its lock."""
        try:
            self.path.unlink()
        finally:
            os.close(self.fd)


def _created(folder: Path, attempts: int = 3) -> tuple[int, Path]:
    """A new segment file, locked, under its final name. It is created under a name recover() does not replay and
    renamed once locked; a recovery that took the file away before the lock (the writer paused for NEW_GRACE_S
    in between) makes this writer start another."""
    for attempt in itertools.count(1):
        name = f"{socket.gethostname()}-{os.getpid()}-{next(_counter)}-{uuid.uuid4().hex[:8]}"
        temporary = folder / f".{name}.new"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        path = folder / f"{name}{SUFFIX}"
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(temporary, path)
        except FileNotFoundError:
            os.close(fd)
            if attempt < attempts:
                continue
            raise
        except BaseException:
            os.close(fd)  # not left open and locked, which would make the file one recover() never removes
            temporary.unlink(missing_ok=True)
            raise
        return fd, path


class Journal:
    """A writer's segments: the current one, and those sealed but not yet known to be in the store."""

    def __init__(self, folder: Path, fsync: bool = False):
        self.folder = Path(folder)
        self.fsync = fsync
        self._current: Segment | None = None
        self._sealed: list[Segment] = []

    def append_step(self, run_id: int, step: int, stamp_us: int, values: dict[str, float]) -> None:
        self._segment().append(b"p", json.dumps([run_id, step, stamp_us, values]).encode())

    def append_series(self, run_id: int, key: str, steps: np.ndarray, values: np.ndarray, stamps: np.ndarray) -> None:
        header = json.dumps([run_id, key, int(steps.size)]).encode() + b"\n"
        arrays = steps.astype("<i8", copy=False).tobytes() + values.astype("<f8", copy=False).tobytes()
        self._segment().append(b"s", header + arrays + stamps.astype("<i8", copy=False).tobytes())

    def _segment(self) -> Segment:
        if self._current is None:
            try:
                self._current = Segment(self.folder, self.fsync)
            except OSError as error:
                raise StoreError(f"cannot keep the logged points on disk in {self.folder}: {error.strerror}") from error
        return self._current

    def seal(self) -> int:
        """Close the current segment to new points (a flush is taking them); returns how many segments are sealed."""
        if self._current is not None:
            self._sealed.append(self._current)
            self._current = None
        return len(self._sealed)

    def stored(self, sealed: int) -> None:
        """The first `sealed` sealed segments' points are committed in the store: delete them."""
        done, self._sealed = self._sealed[:sealed], self._sealed[sealed:]
        for segment in done:
            segment.delete()


def read_segment(path: Path) -> pl.DataFrame:
    """Every whole frame of a segment as points; a frame cut short by a kill mid-write is left out."""
    data = Path(path).read_bytes()
    steps: dict[str, list] = {name: [] for name in POINT_SCHEMA}
    series: list[pl.DataFrame] = []
    offset = 0
    while offset + FRAME.size <= len(data):
        kind, length = FRAME.unpack_from(data, offset)
        payload = data[offset + FRAME.size : offset + FRAME.size + length]
        if len(payload) < length:
            break
        offset += FRAME.size + length
        if kind == b"p":
            run_id, step, stamp, values = json.loads(payload)
            for key, value in values.items():
                for name, item in zip(POINT_SCHEMA, (run_id, key, step, value, stamp), strict=True):
                    steps[name].append(item)
        elif kind == b"s":
            series.append(_series_frame(payload))
    frames = [pl.DataFrame(steps, schema={**POINT_SCHEMA, "wall_time": pl.Int64}), *series]
    points = pl.concat(frames)
    return points.with_columns(pl.from_epoch("wall_time", time_unit="us"))


def _series_frame(payload: bytes) -> pl.DataFrame:
    header, _, arrays = payload.partition(b"\n")
    run_id, key, n = json.loads(header)
    steps = np.frombuffer(arrays, dtype="<i8", count=n)
    values = np.frombuffer(arrays, dtype="<f8", count=n, offset=8 * n)
    stamps = np.frombuffer(arrays, dtype="<i8", count=n, offset=16 * n)
    return pl.DataFrame(
        {"run_id": np.full(n, run_id, dtype=np.int64), "key": [key] * n, "step": steps, "value": values, "wall_time": stamps},
        schema={**POINT_SCHEMA, "wall_time": pl.Int64},
    )


def recover(store: TrackingStore, folder: Path) -> int:
    """Put the points of segments whose writer has died into the store, then delete them; returns points stored."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    for path in folder.glob(".*.new"):  # a writer killed while creating a segment: nothing was logged to it
        _remove_if_unlocked(path, older_than=NEW_GRACE_S)
    stored = 0
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # its writer finished with it a moment ago
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer's
            if os.fstat(fd).st_nlink == 0:
                continue  # its writer (or another recovery) deleted it between our open and our lock: stored
            try:
                stored += _replay(store, path)
            except (StoreError, StoreBusyError):
                raise  # the store cannot take points now: every segment waits for the next look
            except Exception:  # this segment can never go in (a writer of an older version, a damaged disk): set it
                _set_aside(path)  # aside, so it does not stop the segments after it from being replayed
                continue
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return stored


def recover_soon(store: TrackingStore, folder: Path) -> None:
    """Once per process and folder, in the background: where no owner replays (team mode), a script's writer puts in
    what a killed script on this machine journaled, so a laptop with no worker loses nothing either."""
    folder = Path(folder).resolve()
    with _looked_lock:
        if (os.getpid(), folder) in _looked:
            return
        _looked.add((os.getpid(), folder))

    def look() -> None:
        try:
            replayed = recover(store, folder)
        except Exception:  # the store out of reach, say: the segments wait for the next writer or worker
            log.warning("could not replay the metric journals in %s now; a later writer or worker will", folder, exc_info=True)
            return
        if replayed:
            log.info("replayed %d metric points that killed writers had journaled", replayed)

    threading.Thread(target=look, name="tunedeck-journal-recovery", daemon=True).start()


_looked: set[tuple[int, Path]] = set()
_looked_lock = threading.Lock()


def _set_aside(path: Path) -> None:
    kept = path.with_suffix(REFUSED)
    log.exception("journal segment %s cannot be stored; kept as %s for a person to look at", path.name, kept.name)
    path.rename(kept)


def _remove_if_unlocked(path: Path, older_than: float) -> None:
    """Remove a file no writer holds, once it is `older_than` seconds old: a writer creates its segment file, then
    locks it, so a fresh unlocked one may be about to be locked (removing it failed that writer's log())."""
    try:
        if path.stat().st_mtime > time.time() - older_than:
            return
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path.unlink(missing_ok=True)
    except BlockingIOError:
        pass  # being created right now
    finally:
        os.close(fd)


def _replay(store: TrackingStore, path: Path) -> int:
    points = read_segment(path)
    stored = 0
    for (run_id,), points_of_run in points.group_by("run_id", maintain_order=True):
        try:
            stored += store.log_metrics(points_of_run)
        except NotFoundError:
            log.warning("dropped %d journaled points of run %s, which is not in the store", points_of_run.height, run_id)
    return stored
