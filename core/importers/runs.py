"""Imported runs go through the real lifecycle, once: the source's ID is kept in `import.source`."""

import re
import signal
import sqlite3
import struct
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from core.entities import Run
from core.errors import ConflictError, failure_text
from core.points import KEY_CHARACTERS, KEY_PATTERN, POINT_SCHEMA
from core.run_params import IMPORT_PREFIX, IMPORT_WORKER, fitting_params
from core.store import TrackingStore
from core.tags import MAX_TAGS_PER_CALL

SOURCE_PARAM = IMPORT_PREFIX + "source"
IMPORT_STOPPED = "the import stopped before this run was whole"
# What a source's damaged or unreadable files raise while read: the run is skipped, saying why, and the others go on.
# (A flipped byte in an event file reaches the record parser as any of these.)
UNREADABLE = (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, OverflowError, struct.error, sqlite3.Error)
ALREADY_IMPORTED = ": already imported"
NOT_READ = "could not be read"  # in every skip for damage, so a summary knows an import that read nothing failed
NO_POINTS = "no metric point could be read"  # a run readable but holding no scalar (histograms only), or damaged
BATCH_POINTS = 500_000
_NOT_A_KEY_CHARACTER = re.compile(rf"[^{KEY_CHARACTERS}]")


@dataclass(frozen=True)
class Series:
    """One metric of one run: steps, values and wall times (epoch milliseconds), in logging order."""

    steps: np.ndarray
    values: np.ndarray
    wall_ms: np.ndarray


@dataclass
class SourceRun:
    source_id: str  # unique in the source, e.g. "mlflow:<run uuid>"
    experiment: str
    name: str
    status: str  # "completed", "failed" or "cancelled"
    params: dict[str, Any]
    read_metrics: Callable[[], dict[str, Series]]
    error: str | None = None
    description: str = ""
    notes: list[str] = field(default_factory=list)  # what read_metrics left out, one sentence each
    metrics_only: bool = False  # a run that is nothing but its metrics (TensorBoard's): none readable, nothing to import
    tags: dict[str, str] = field(default_factory=dict)  # already checked (core.tags): set on the run as it is imported
    started_ms: int | None = None  # when the run started and ended in the source (epoch ms); unknown: its points tell
    ended_ms: int | None = None
    experiment_given: bool = False  # named by the user (--experiment), not by the source: always that experiment


@dataclass
class ImportSummary:
    runs_imported: int = 0
    points_imported: int = 0
    experiments_created: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # runs not imported, one sentence each: which and why
    notes: list[str] = field(default_factory=list)  # what was left out of or changed in imported runs, and where they went

    @property
    def read_nothing(self) -> bool:
        """Nothing imported because nothing there could be read as metrics: a failure a script should notice."""
        return not self.runs_imported and any(NOT_READ in item or NO_POINTS in item for item in self.skipped)

    def lines(self) -> list[str]:
        lines = [f"imported {_count(self.runs_imported, 'run')} with {_count(self.points_imported, 'metric point')}"]
        if self.experiments_created:
            lines[0] += f" into {_count(len(self.experiments_created), 'new experiment')}: {', '.join(self.experiments_created)}"
        skipped = _already_imported_together(self.skipped)
        for title, items in ((f"skipped {_count(len(self.skipped), 'run')}", skipped), ("notes", self.notes)):
            if items:
                lines += [f"{title}:"] + [f"  - {item}" for item in items]
        return lines


def _already_imported_together(skipped: list[str], named: int = 3) -> list[str]:
    """Importing a folder again skips every run in it: one line for those (a few named), not one line each."""
    already = [item.removesuffix(ALREADY_IMPORTED) for item in skipped if item.endswith(ALREADY_IMPORTED)]
    if len(already) < 2:
        return skipped
    names = ", ".join(name.removeprefix("run ") for name in already[:named])
    more = f" and {len(already) - named:,} more" if len(already) > named else ""
    others = [item for item in skipped if not item.endswith(ALREADY_IMPORTED)]
    return [f"{len(already):,} runs already imported: {names}{more}", *others]


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def metric_key(name: str) -> str:
    """A source's metric name as a key the store takes: accents dropped ('métrique' -> 'metrique'), any other
    character the store's keys do not allow as '_', at most 250 long."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode() if not name.isascii() else name
    if not plain.strip(" _"):  # nothing readable left (a name in CJK, say): one '_' a character, as before
        plain = name
    return _NOT_A_KEY_CHARACTER.sub("_", plain)[:250] or "_"


def _unique_keys(names: list[str]) -> dict[str, str]:
    """Each name's key; two names that clean to one key (`acc (%)`, `acc [%]`) get `-2`, `-3`, ... so no metric
    overwrites another's points."""
    keys, taken = {}, {name for name in names if KEY_PATTERN.match(name)}
    for name in names:
        if KEY_PATTERN.match(name):
            keys[name] = name
            continue
        key, number = metric_key(name), 2
        while key in taken:
            key, number = f"{metric_key(name)[:245]}-{number}", number + 1
        taken.add(key)
        keys[name] = key
    return keys


def clean_series(series: Series) -> tuple[Series, Counter]:
    """Finite values at steps from 0 only (the store's rule), one per step (the last logged wins), in step order; and
    how many points were left out, by reason (non_finite, negative, repeated)."""
    finite = np.isfinite(series.values)
    kept = finite & (series.steps >= 0)
    steps, values, wall_ms = series.steps[kept], series.values[kept], series.wall_ms[kept]
    order = np.lexsort((np.arange(steps.size), steps))  # by step, then logging order
    steps, values, wall_ms = steps[order], values[order], wall_ms[order]
    last = np.append(steps[1:] != steps[:-1], True) if steps.size else np.zeros(0, dtype=bool)
    left_out = Counter(
        non_finite=int((~finite).sum()), negative=int((finite & (series.steps < 0)).sum()), repeated=int((~last).sum())
    )
    return Series(steps[last], values[last], wall_ms[last]), +left_out  # unary plus: the zero counts go


def _left_out(counts: Counter) -> str:
    """What an import left out of a run's points, said by reason."""
    reasons = {
        "non_finite": lambda n: _count(n, "NaN or infinite value"),
        "negative": lambda n: f"{_count(n, 'point')} at a negative step",
        "repeated": lambda n: f"{_count(n, 'point')} at a step logged again (the last value of each step is kept)",
    }
    return "left out " + ", ".join(say(counts[reason]) for reason, say in reasons.items() if counts[reason])


def import_runs(
    store: TrackingStore,
    runs: Iterable[SourceRun],
    summary: ImportSummary,
    dataset: str,
    advance: Callable[[int], None] = lambda _: None,
) -> ImportSummary:
    """Import each run not imported before into the experiment of its name (made when its first run comes in)."""
    runs = list(runs)
    experiments: dict[str, _Target] = {}
    imported_before = _ImportedBefore(store)
    for run in runs:
        if run.experiment not in experiments:
            siblings = [other.source_id for other in runs if other.experiment == run.experiment]
            experiments[run.experiment] = _Target.of(store, run, dataset, imported_before, summary, siblings)
        target = experiments[run.experiment]
        if run.source_id in target.imported:
            earlier = target.imported[run.source_id]
            summary.skipped.append(f"run {run.name!r} ({run.source_id}){ALREADY_IMPORTED}{_grown(run, earlier)}")
        else:
            try:
                points, dropped, renamed = _points(run.read_metrics())
            except UNREADABLE as error:
                summary.skipped.append(f"run {run.name!r} ({run.source_id}): its metrics {NOT_READ} ({failure_text(error)})")
                advance(1)
                continue
            if run.metrics_only and points.is_empty():
                why = "; ".join(run.notes) or "it holds no scalar"
                summary.skipped.append(f"run {run.name!r} ({run.source_id}): {NO_POINTS} ({why})")
            else:
                experiment_id = target.experiment_id(store, summary)
                if run.source_id in target.imported:  # brought in meanwhile by an import on another machine
                    summary.skipped.append(f"run {run.name!r} ({run.source_id}){ALREADY_IMPORTED}")
                    advance(1)
                    continue
                _import_run(store, experiment_id, run, points, dropped, renamed, summary)
                target.imported[run.source_id] = None
        advance(1)
    return summary


@dataclass
class _Target:
    """The experiment runs of one name go into: the live one of that name, or one made when its first run comes in."""

    name: str
    dataset: str
    description: str
    id: int | None
    imported: dict[str, Run | None]  # source ID -> the run imported from it (None: imported in this call)

    @classmethod
    def of(
        cls,
        store: TrackingStore,
        run: SourceRun,
        dataset: str,
        before: "_ImportedBefore",
        summary: ImportSummary,
        source_ids: list[str],
    ) -> "_Target":
        """`source_ids`: every run of this experiment in the source; where any went before, they all go."""
        found = store.find_experiment(run.experiment)
        if found is None and not run.experiment_given and (moved := before.experiment_of(source_ids)) is not None:
            found = store.get_experiment(moved)  # imported before, into an experiment renamed since: that one again
            summary.notes.append(f"runs of {run.experiment!r} go into {found.name!r}, where they were imported before")
        if found is None:
            return cls(run.experiment, dataset, run.description, None, {})
        return cls(run.experiment, dataset, run.description, found.id, _imported_into(store, found.id))

    def experiment_id(self, store: TrackingStore, summary: ImportSummary) -> int:
        if self.id is None:
            try:
                self.id = store.create_experiment({"name": self.name, "dataset": self.dataset, "description": self.description})
                summary.experiments_created.append(self.name)
            except ConflictError:  # made meanwhile (an import on another machine of the team): its runs go there too
                found = store.find_experiment(self.name)
                if found is None:
                    raise
                self.id = found.id
                self.imported = _imported_into(store, found.id)  # what that import has brought in is not brought again
        return self.id


def _imported_into(store: TrackingStore, experiment_id: int) -> dict[str, Run | None]:
    """Source ID -> the run imported from it into the experiment (a stopped import's run is imported again)."""
    return {
        str(r.config[SOURCE_PARAM]): r
        for r in store.list_runs(experiment_id)
        if SOURCE_PARAM in r.config and not (r.error or "").startswith(IMPORT_STOPPED)
    }


class _ImportedBefore:
    """Where runs of this store were imported before, read once when an experiment of the source's name is not found."""

    def __init__(self, store: TrackingStore):
        self.store = store
        self.found: dict[str, int] | None = None

    def experiment_of(self, source_ids: list[str]) -> int | None:
        """The live experiment the first of these runs that was imported before went into."""
        if self.found is None:
            frame, column = self.store.search_frame(), f"params.{SOURCE_PARAM}"
            pairs = frame.select(column, "experiment_id").drop_nulls().iter_rows() if column in frame.columns else []
            self.found = {str(source): experiment_id for source, experiment_id in pairs}
        return next((self.found[source] for source in source_ids if source in self.found), None)


def _grown(run: SourceRun, earlier: Run | None) -> str:
    """For a run that is its metrics alone: whether its files hold more points now than when it was imported (its
    writer was still at work). Those are not added to the finished run; the user is told how to bring them in."""
    if not run.metrics_only or earlier is None:
        return ""
    stored = sum(summary.count for summary in earlier.metrics.values())
    now, _, _ = _points(run.read_metrics())
    if now.height <= stored:
        return ""
    return (
        f", with {_count(stored, 'point')}; its files now hold {now.height:,} (it was still being written then). A "
        "finished run takes no more points: import the folder into another experiment (--experiment) to have them all"
    )


def _import_run(
    store: TrackingStore,
    experiment_id: int,
    run: SourceRun,
    points: pl.DataFrame,
    dropped: Counter,
    renamed: dict[str, str],
    summary: ImportSummary,
) -> None:
    summary.notes += [f"run {run.name!r}: {note}" for note in run.notes]
    for original, key in renamed.items():
        summary.notes.append(
            f"run {run.name!r}: metric {original!r} renamed {key!r} (keys allow unaccented letters, digits, _ . - / : @ "
            "and spaces)"
        )
    if dropped:
        summary.notes.append(f"run {run.name!r}: {_left_out(dropped)}")
    params, left_out = fitting_params(run.params)  # one over-long param of the source's does not stop the import
    summary.notes += [f"run {run.name!r}: {note}" for note in left_out]
    with _CtrlC() as ctrl_c:  # pressed while a request is out, it waits for the answer: the run is never half told
        run_id = store.create_run(experiment_id, {**params, SOURCE_PARAM: run.source_id}, name=run.name[:200])
        try:
            ctrl_c.check()
            tags = list(run.tags.items())
            for start in range(0, len(tags), MAX_TAGS_PER_CALL):
                store.set_tags("run", run_id, dict(tags[start : start + MAX_TAGS_PER_CALL]))
            store.mark_running(run_id, worker=IMPORT_WORKER)
            for start in range(0, points.height, BATCH_POINTS):
                ctrl_c.check()
                store.log_metrics(points.slice(start, BATCH_POINTS).with_columns(run_id=pl.lit(run_id, pl.Int64)))
        except BaseException as error:  # not left running: failed, saying so, and imported afresh next time
            store.fail_run(run_id, f"{IMPORT_STOPPED}: {error}")
            raise
        if run.status == "completed":
            store.complete_run(run_id)
        elif run.status == "cancelled":
            store.cancel_run(run_id)
        else:
            store.fail_run(run_id, run.error or "failed before it was imported")
        summary.runs_imported += 1  # counted as it ends: an import interrupted says it, and the next one skips it
        summary.points_imported += points.height
        started, ended = _times(run, points)
        if started is not None or ended is not None:
            store.set_imported_times(run_id, started, ended)


class _CtrlC:
    """Holds Ctrl-C while one run is imported, raising it where the run can still be failed whole (before each batch
    of points) or once it has ended and is counted. Raised as it came, it could cut a request short after the store
    had done it: a run made whose ID never came back stayed queued and counted as imported, or a run completed went
    uncounted. Only the main thread gets signals; elsewhere this holds nothing."""

    def __init__(self):
        self.pressed = False
        self.held = threading.current_thread() is threading.main_thread()

    def __enter__(self) -> "_CtrlC":
        if self.held:
            self.previous = signal.signal(signal.SIGINT, self._press)
        return self

    def _press(self, *_) -> None:
        self.pressed = True

    def check(self) -> None:
        if self.pressed:
            self.pressed = False
            raise KeyboardInterrupt

    def __exit__(self, kind, *_) -> None:
        if self.held:
            signal.signal(signal.SIGINT, self.previous)
        if kind is None:
            self.check()


def _times(run: SourceRun, points: pl.DataFrame) -> tuple[int | None, int | None]:
    """The run's start and end in the source, else its first and last point's wall time (TensorBoard keeps no other)."""
    walls = points["wall_time"].dt.epoch("ms")
    first, last = (walls.min(), walls.max()) if points.height else (None, None)
    started = run.started_ms if run.started_ms is not None else first
    ended = run.ended_ms if run.ended_ms is not None else last
    if started is not None and ended is not None and ended < started:  # a clock that went back: keep the start
        ended = started
    return started, ended


def _points(metrics: dict[str, Series]) -> tuple[pl.DataFrame, Counter, dict[str, str]]:
    """All of a run's points as one frame in the store's schema (run_id 0 until the run exists)."""
    frames, dropped, renamed = [], Counter(), {}
    keys = _unique_keys(list(metrics))
    for name, series in metrics.items():
        key = keys[name]
        if key != name:
            renamed[name] = key
        kept, lost = clean_series(series)
        dropped += lost
        frames.append(
            pl.DataFrame({"run_id": 0, "key": key, "step": kept.steps, "value": kept.values, "wall_time": kept.wall_ms})
        )
    if not frames:
        return pl.DataFrame(schema=POINT_SCHEMA), dropped, renamed
    points = pl.concat(frames).with_columns(pl.from_epoch(pl.col("wall_time").cast(pl.Int64), time_unit="ms"))
    return points.cast(POINT_SCHEMA), dropped, renamed
