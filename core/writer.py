"""Buffered metric logging: points collect in memory and reach the store in large batches.

A flush is one store operation, whatever its size, so batching is what makes ingest fast while
other processes share the store. Points are flushed when the buffer holds `flush_points`, when
`flush_seconds` have passed since the oldest unflushed point (a background thread sees to that, so
a slow training step still shows up live), and on `flush()` / `close()`. Every call is also
appended to a journal on local disk before it returns (`core.journal`), so a point whose `log()`
returned survives the process being killed before its flush. A store out of reach (a database restarting, a busy
store server) does not stop the logging code: the points wait for the next try, up to OUTAGE_POINTS.
"""

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import numpy as np
import polars as pl

from core.errors import TRANSIENT, StoreBusyError, StoreError, TuneDeckError, ValidationError
from core.journal import Journal, recover_soon
from core.points import MAX_WHOLE, NOT_FINITE, POINT_SCHEMA, check_key, check_run_id, check_step, check_value
from core.settings import get_settings
from core.store import TrackingStore
from core.ticker import flushes

T = TypeVar("T")

# Points a writer holds while the store cannot take them (a database restarting, a busy store server) before a full
# buffer's error reaches the code that logs: training rides out an outage of minutes, not an unbounded one in memory
# (a held point takes about 40 bytes; every one is journaled on disk too).
OUTAGE_POINTS = 2_000_000


def _epoch_us(moment: datetime | None) -> int:
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


class MetricWriter:
    """Collects metric points for any number of runs; use as a context manager so the tail is flushed."""

    def __init__(
        self, store: TrackingStore, *, flush_points: int = 500_000, flush_seconds: float = 1.0, fsync: bool | None = None
    ):
        self.store = store
        fsync = get_settings().journal_fsync if fsync is None else fsync
        self.journal = Journal(store.data_dir / "journal", fsync=fsync)
        if not store.replays_journals:  # team mode: no owner of ours puts in what killed writers journaled here
            recover_soon(store, store.data_dir / "journal")
        self.flush_points = flush_points
        self.flush_seconds = flush_seconds
        self._pieces: list[pl.DataFrame | _Series] = []  # in logging order, so a re-logged step keeps the last value
        # One tuple a log() call: a Ctrl-C there leaves its step whole or out, never part of it or columns apart.
        self._steps: list[tuple[int, int, int, dict[str, float]]] = []
        self._buffered = 0
        self._oldest: float | None = None
        self._lock = threading.Lock()
        self._flush_lock = threading.RLock()
        self.last_error: Exception | None = None
        self._timer: int | None = None  # the ticker's job that flushes what waited flush_seconds
        self._closed = False
        self._unreachable = False  # the last try to store found the store out of reach
        self._retry_at = 0.0  # when log() tries again in a writer without a timer
        self.points_written = 0

    # -- logging ---------------------------------------------------------------------------
    def log(self, run_id: int, step: int, values: Mapping[str, float], wall_time: datetime | None = None) -> None:
        """Log one step's metrics, e.g. log(run_id, 10, {"loss": 0.7, "learning_rate": 1e-4})."""
        run_id = check_run_id(run_id)
        step = check_step(step)
        checked = {check_key(key): check_value(key, value) for key, value in values.items()}
        stamp = _epoch_us(wall_time)
        with self._lock:
            self.journal.append_step(run_id, step, stamp, checked)
            self._steps.append((run_id, step, stamp, checked))
            full = self._added(len(checked))
        if full:
            self._flush_full()

    def log_series(
        self, run_id: int, key: str, steps: Sequence[int], values: Sequence[float], wall_times: Sequence[datetime] | None = None
    ) -> None:
        """Log many steps of one metric at once: the fast path for bulk imports and benchmarks."""
        run_id = check_run_id(run_id)
        key = check_key(key)
        steps = np.asarray(steps)
        values = np.asarray(values, dtype=np.float64)
        if steps.shape != values.shape or steps.ndim != 1:
            raise ValidationError(f"steps and values for {key!r} must be flat sequences of the same length")
        if steps.size and (not np.issubdtype(steps.dtype, np.integer) or steps.min() < 0 or steps.max() > MAX_WHOLE):
            raise ValidationError(f"steps for {key!r} must be whole numbers from 0 to 2^63 - 1")
        if not np.isfinite(values).all():
            raise ValidationError(f"metric {key!r} has NaN or infinite values: {NOT_FINITE}")
        if wall_times is None:
            stamps = np.full(steps.size, _epoch_us(None), dtype=np.int64)
        else:
            stamps = np.array([_epoch_us(moment) for moment in wall_times], dtype=np.int64)
        series = _Series(run_id, key, steps.astype(np.int64, copy=False), values, stamps)
        with self._lock:
            self.journal.append_series(run_id, key, series.steps, values, stamps)
            self._rows_to_piece()
            self._pieces.append(series)
            full = self._added(steps.size)
        if full:
            self._flush_full()

    def _added(self, count: int) -> bool:
        """Count new points; True when the buffer is full and should be flushed now."""
        self._buffered += count
        if self._oldest is None:
            self._oldest = time.monotonic()
        if self._timer is None:
            self._ensure_timer()
        return self._buffered >= self.flush_points

    # -- flushing ------------------------------------------------------------------------------
    def _flush_full(self) -> None:
        """A full buffer goes to the store now, the logging code waiting for it: that keeps a writer in step with the
        store. While the store is out of reach (a database restarting, a store server that does not answer) the points
        stay buffered and journaled and log() does not wait on it: the timer tries again (log() itself, once a second,
        in a writer without one), and only past OUTAGE_POINTS does the error reach the logging code. An error that a
        later try cannot get past (a permission refused) reaches it at once."""
        over = self._buffered > max(OUTAGE_POINTS, self.flush_points)
        if self._unreachable and not over and (self._timer is not None or time.monotonic() < self._retry_at):
            return
        if not self._flush_lock.acquire(blocking=over or self._timer is None):
            return  # the timer is storing what came before: these points go with the next flush
        try:
            self.flush()
        except TRANSIENT:
            if over:
                raise
            self._retry_at = time.monotonic() + 1.0
        finally:
            self._flush_lock.release()

    def flush(self) -> int:
        """Write everything buffered in one store operation; returns the points written.

        If the store is busy or failing the points stay buffered (and journaled) for the next flush;
        points the store rejects (an unknown run) are dropped with the error, since retrying cannot help.
        """
        return self._hand_over(lambda batch: self.store.log_metrics(batch) if batch is not None else 0)

    def _hand_over(
        self, store_batch: Callable[[pl.DataFrame | None], T], keep_on: tuple[type[Exception], ...] = (StoreBusyError, StoreError)
    ) -> T:
        """Give the buffered points (None when there are none) to store_batch, which must store them in one operation;
        once it returns they are committed and their journal segments go. If it raises one of keep_on, the points
        stay buffered and journaled for the next try."""
        with self._flush_lock:
            with self._lock:
                batch = self._take()
                sealed = self.journal.seal()
            try:
                result = store_batch(batch)
            except keep_on as error:
                self._unreachable = isinstance(error, TRANSIENT)
                if batch is not None:
                    with self._lock:
                        self._pieces.insert(0, batch.with_columns(pl.col("wall_time").dt.epoch("us")))
                        self._buffered += batch.height
                raise
            except TuneDeckError:
                self.journal.stored(sealed)  # refused for good (an unknown run): replaying would be refused too
                raise
            self.journal.stored(sealed)
            self._unreachable = False
            if batch is not None:
                self.points_written += batch.height
            return result

    def _rows_to_piece(self) -> None:
        if not self._steps:
            return
        columns: dict[str, list] = {name: [] for name in POINT_SCHEMA}
        for run_id, step, stamp, checked in self._steps:
            count = len(checked)
            columns["run_id"] += [run_id] * count
            columns["key"] += checked.keys()
            columns["step"] += [step] * count
            columns["value"] += checked.values()
            columns["wall_time"] += [stamp] * count
        self._pieces.append(pl.DataFrame([pl.Series(name, columns[name], kind) for name, kind in _BUFFER_SCHEMA.items()]))
        self._steps = []

    def _take(self) -> pl.DataFrame | None:
        self._rows_to_piece()
        if not self._pieces:
            return None
        frames, series = [], []
        for piece in [*self._pieces, None]:
            if isinstance(piece, _Series):
                series.append(piece)
                continue
            if series:
                frames.append(_Series.frame(series))
                series = []
            if piece is not None:
                frames.append(piece)
        self._pieces, self._buffered, self._oldest = [], 0, None
        batch = frames[0] if len(frames) == 1 else pl.concat(frames)
        return batch.replace_column(batch.get_column_index("wall_time"), batch["wall_time"].cast(POINT_SCHEMA["wall_time"]))

    def _ensure_timer(self) -> None:
        if self._timer is None and self.flush_seconds > 0 and not self._closed:
            self._timer = flushes.every(self.flush_seconds / 4, self._flush_if_due)

    def _flush_if_due(self) -> None:
        with self._lock:
            due = self._oldest is not None and time.monotonic() - self._oldest >= self.flush_seconds
        if not due:
            return
        with self._flush_lock:  # held until last_error is set: a close() waiting for this flush then sees it
            try:
                self.flush()
            except (StoreBusyError, StoreError):
                pass  # the points stay buffered and the next flush retries them
            except TuneDeckError as error:
                self.last_error = error  # points were refused: the next flush() or close() reports it

    def close(self) -> None:
        """Stop the background flusher and write what is left."""
        self.close_with(lambda batch: self.store.log_metrics(batch) if batch is not None else 0)

    def close_with(self, store_batch: Callable[[pl.DataFrame | None], T]) -> T:
        """Stop the background flusher and hand what is left to store_batch, which stores it together with whatever
        else ends the run (one operation instead of two)."""
        with self._lock:
            self._closed = True
            timer, self._timer = self._timer, None
        flushes.cancel(timer)  # a flush it is making now holds the flush lock, which the hand-over below waits for
        result = self._hand_over(store_batch, keep_on=(TuneDeckError,))  # a refused outcome must not lose the points
        if self.last_error is not None:
            error, self.last_error = self.last_error, None
            raise error
        return result

    def __enter__(self) -> "MetricWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


_BUFFER_SCHEMA = {**POINT_SCHEMA, "wall_time": pl.Int64}


class _Series:
    """One log_series call kept as NumPy arrays: building a frame per call cost more than the store write."""

    def __init__(self, run_id: int, key: str, steps: np.ndarray, values: np.ndarray, stamps: np.ndarray):
        self.run_id, self.key, self.steps, self.values, self.stamps = run_id, key, steps, values, stamps

    @staticmethod
    def frame(pieces: list["_Series"]) -> pl.DataFrame:
        """Many calls' points as one frame, built with one concatenation per column."""
        counts = np.array([piece.steps.size for piece in pieces])
        keys = pl.Series("key", [piece.key for piece in pieces], dtype=pl.String)
        return pl.DataFrame(
            {
                "run_id": np.repeat(np.array([piece.run_id for piece in pieces], dtype=np.int64), counts),
                "key": keys.gather(np.repeat(np.arange(len(pieces)), counts)),
                "step": np.concatenate([piece.steps for piece in pieces]),
                "value": np.concatenate([piece.values for piece in pieces]),
                "wall_time": np.concatenate([piece.stamps for piece in pieces]),
            },
            schema=_BUFFER_SCHEMA,
        )
