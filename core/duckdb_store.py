"""The tracking store on one DuckDB file, held by the process that owns it (see core.database and core.owner)."""

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from core import overviews
from core.database import Database, store_error
from core.entities import utcnow
from core.errors import StoreError
from core.lifecycle import Begin, End
from core.settings import get_settings
from core.sql import first, frame, rows
from core.sql_store import COUNT_RUN, COUNTER_COLUMNS, COUNTERS, SqlStore, checked_series_request, failure_detail, one_line
from core.status import ENDED_VALUES, RunStatus

_STORED_RUNS = "SELECT id, experiment_id, created_at FROM runs WHERE id IN (SELECT unnest(?::BIGINT[]))"
_LIVE_BY_NAME = "SELECT id FROM experiments WHERE name = ? AND deleted_at IS NULL"
_LIVE_BY_ID = "SELECT id FROM experiments WHERE id = ? AND deleted_at IS NULL"
_INSERT_BEGUN = """
    INSERT INTO runs (id, experiment_id, name, status, config, created_at, worker, started_at, heartbeat_at, attempt)
    SELECT id, experiment_id, name, 'running', config, moment, worker, moment, moment, 1 FROM begun
"""

# Runs answered as ended, ended in one statement; a run no longer running (ended before: a replay) is left as it is.
_END_RUNS = """
    UPDATE runs SET status = e.status,
        error = CASE WHEN e.status = 'completed' THEN runs.error ELSE e.error END,
        traceback = CASE WHEN e.status = 'failed' THEN e.traceback ELSE runs.traceback END,
        ended_at = e.moment
    FROM ended e WHERE runs.id = e.run_id AND runs.status = 'running'
    RETURNING runs.id, runs.experiment_id
"""


class DuckDBStore(SqlStore):
    """The store in one process: it opens the file on first use and holds it until close().

    Other processes use `core.open_store()`, which reaches this through the store's owner.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        clock: Callable[[], datetime] = utcnow,
        dataset_roots: list[Path] | None = None,
        upkeep: bool = True,
    ):
        """`upkeep=False`: this process builds no curve overviews (`tunedeck store copy` only reads its source)."""
        super().__init__(clock=clock, dataset_roots=dataset_roots)
        self.path = Path(path)
        self._upkeep = upkeep
        self._db: Database | None = None
        self._closed = False
        self._overviews_kept = True
        # Runs with a growing curve overview, as the last upkeep pass left them (replaced whole: read without a lock).
        # Only for speed: a read of other runs skips looking for the step past which to read their points.
        self._growing: frozenset[int] = frozenset()

    @property
    def data_dir(self) -> Path:
        return self.path.parent

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def db(self) -> Database:
        if self._db is None:
            if self._closed:  # a request that outlived close() (the store server's drain) must not open the file again
                raise StoreError(f"the store at {self.path} was closed; open it again")
            upkeep = self._keep_overviews if self._upkeep else None
            self._db = Database(self.path, self._apply_lifecycle, fsync=get_settings().journal_fsync, upkeep=upkeep)
            self._overviews_kept = not self._db.read_only or self._has_table("growing_overviews")
        return self._db

    def _keep_overviews(self, con, runs: list[int] | None) -> bool:
        growing = set(self._growing)
        more = overviews.build(con, runs, growing)
        self._growing = frozenset(growing)  # before the commit: a pass rolled back only costs some reads their speed
        return more

    def _has_table(self, name: str) -> bool:
        return self._statement(lambda con: first(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]))[0] > 0

    def close(self) -> None:
        self._closed = True
        if self._db is not None:
            self._db.close()
            self._db = None

    def _write(self, op: Callable[[duckdb.DuckDBPyConnection], Any], quiet: bool = False) -> Any:
        return self.db.write(op, quiet)

    def _read(self, query: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        """Run reads that see one state of the store; DuckDB's own failures become StoreError."""
        try:
            with self.db.snapshot() as con:
                return query(con)
        except duckdb.Error as error:
            raise store_error(self.path, error) from error

    def _statement(self, query: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        """A read of one statement: it sees one state by itself, so it skips the snapshot's BEGIN and ROLLBACK
        (two more statements, ~0.4 ms here; a 10-call history spends as much on them as on its scans)."""
        try:
            with self.db.reader() as cursor:
                return query(cursor)
        except duckdb.Error as error:
            raise store_error(self.path, error) from error

    def reading(self):
        return self.db.snapshot()

    def _begin_early(self, experiment: int | str, config: str, name: str | None, worker: str) -> int | None:
        """begin_run answered from memory and logged, applied with the next batch (core.lifecycle); None when it
        takes the ordinary path: another write is running, or the experiment is new, deleted or unknown."""
        db = self.db
        epoch = db.lane.open_epoch() if db.answers_early else None
        experiment_id = None if epoch is None else self._live_for_answer(epoch, experiment)
        if experiment_id is None or not db.run_ids_ready():  # in this order: a run ID taken is one the run gets
            return None

        def build(lane) -> Begin | None:  # under the lane's lock: IDs and start times in the same order
            if lane.next_id is None:
                return None
            run_id, lane.next_id = lane.next_id, lane.next_id + 1
            return Begin(run_id, experiment_id, name, config, worker, self.clock())

        event = db.defer(epoch, build)
        return None if event is None else event.run_id

    def _live_for_answer(self, epoch: int, experiment: int | str) -> int | None:
        """The live experiment's ID as of `epoch`, remembered until another write; read without waiting for answered
        events (they change no experiment)."""
        lane = self.db.lane
        by_name = isinstance(experiment, str)
        if not by_name and (isinstance(experiment, bool) or not isinstance(experiment, int) or experiment < 1):
            return None
        known = lane.experiments.get(experiment) if by_name else (experiment if experiment in lane.live else None)
        if known is not None:
            return known
        try:
            with self.db.reader(settled=False) as con:
                found = first(con, _LIVE_BY_NAME if by_name else _LIVE_BY_ID, [experiment])
        except duckdb.Error:
            return None
        if found is None:
            return None
        with lane.changed:
            if lane.epoch == epoch:
                lane.live.add(found[0])
                if by_name:
                    lane.experiments[experiment] = found[0]
        return found[0]

    def _end_early(self, run_id: int, status: RunStatus, points: pl.DataFrame | None, error, traceback) -> bool:
        """end_run answered from memory and logged, applied with the next batch (core.lifecycle); False when it takes
        the ordinary path: another write is running, the run is not running, or the points name other runs."""
        db = self.db
        epoch = db.lane.open_epoch() if db.answers_early else None
        if epoch is None:
            return False
        if points is not None and points.is_empty():
            points = None
        if points is not None and (points["run_id"] != run_id).any():
            return False
        may = db.lane.may_end(run_id)
        if may is None:
            try:
                with db.reader(settled=False) as con:
                    found = first(con, "SELECT status FROM runs WHERE id = ?", [run_id])
            except duckdb.Error:
                return False
            may = found is not None and found[0] == RunStatus.RUNNING.value
        if not may:
            return False  # the ordinary path says why it cannot end
        if status is RunStatus.FAILED:
            error, traceback = one_line(error or "failed"), failure_detail(error, traceback)
        elif status is RunStatus.CANCELLED:
            error, traceback = "cancelled by the user", None
        else:
            error, traceback = None, None

        def build(lane) -> End | None:
            if lane.may_end(run_id) is False:
                return None  # ended by another answer a moment ago
            if points is not None and db.writes_queued:
                # Events are applied ahead of the writes queued: a batch of the same points its client gave up on
                # (and sent again with this end) would then land after it. Queued behind them instead.
                return None
            return End(run_id, status, error, traceback, self.clock(), None if points is None else points.clone())

        return db.defer(epoch, build) is not None

    def _apply_lifecycle(self, db: Database, con, events: list[Begin | End]) -> None:
        """Answered run events (core.lifecycle), a batch with a few statements for all of them. Applying one twice
        changes nothing the second time: a run is not inserted again, an ended run does not end again."""
        changes: dict[int, dict[str, Any]] = {}

        def change(experiment_id: int) -> dict[str, Any]:
            return changes.setdefault(experiment_id, {**dict.fromkeys(COUNTER_COLUMNS, 0), "new": 0, "error": None})

        begins = [event for event in events if isinstance(event, Begin)]
        if begins:
            db.sync_run_ids(con, max(event.run_id for event in begins))
            for begin in self._insert_begun(con, begins):
                change(begin.experiment_id)["new"] += 1
                change(begin.experiment_id)["active_runs"] += 1
        ends = [event for event in events if isinstance(event, End)]
        if ends:
            ended = pl.DataFrame(
                [(e.run_id, e.status.value, e.error, e.traceback, e.at) for e in ends],
                schema={"run_id": pl.Int64, "status": pl.String, "error": pl.String, "traceback": pl.String, "moment": pl.Datetime("us")},
                orient="row",
            )
            con.register("ended", ended)
            try:
                experiment_of = dict(rows(con, _END_RUNS))
            finally:
                con.unregister("ended")
            self._ended(list(experiment_of))
            self._require_begun(con, [end.run_id for end in ends if end.run_id not in experiment_of])
            points = [end.points for end in ends if end.points is not None and end.run_id in experiment_of]
            if points:  # a replayed end's points are in the store already, committed with its end
                self._store_points(con, pl.concat(points))
            completed = []
            for end in (end for end in ends if end.run_id in experiment_of):  # the others ended before (a replay)
                counts = change(experiment_of[end.run_id])
                counts["active_runs"] -= 1
                counts[COUNTERS[end.status]] += 1
                if end.status is RunStatus.FAILED:
                    counts["error"] = end.error
                elif end.status is RunStatus.COMPLETED:
                    completed.append(end.run_id)
            if completed:
                self._improve_best(con, completed)
        for experiment_id, counts in changes.items():
            deltas = [counts[column] for column in COUNTER_COLUMNS]
            first(con, COUNT_RUN, [*deltas, counts["new"], *deltas, counts["error"], self.clock(), experiment_id])

    @staticmethod
    def _require_begun(con, run_ids: list[int]) -> None:
        """Ends that ended nothing are replays of runs ended before, unless their run is not in the store at all: its
        start was set aside (refused: the disk failing), and the end must be set aside after it, never dropped."""
        if not run_ids:
            return
        stored = {row[0] for row in rows(con, _STORED_RUNS, [run_ids])}
        absent = sorted(set(run_ids) - stored)
        if absent:
            raise StoreError(f"run {', '.join(map(str, absent))} is not in the store (its start was set aside); so is its end")

    @staticmethod
    def _insert_begun(con, begins: list[Begin]) -> list[Begin]:
        """Insert the runs not in the store yet, named run-N in the order they began; returns those inserted."""
        stored = {
            run_id: (experiment_id, created_at)
            for run_id, experiment_id, created_at in rows(con, _STORED_RUNS, [[begin.run_id for begin in begins]])
        }
        clashes = [b.run_id for b in begins if b.run_id in stored and stored[b.run_id] != (b.experiment_id, b.at)]
        if clashes:  # not this start applied before (a replay) but another run: never put one run's data on another
            raise StoreError(f"run ID {', '.join(map(str, clashes))} is another run's already; the start is set aside")
        begins = [begin for begin in begins if begin.run_id not in stored]
        if not begins:
            return []
        experiments = sorted({begin.experiment_id for begin in begins})
        counts = dict(rows(con, "SELECT id, run_count FROM experiments WHERE id IN (SELECT unnest(?::BIGINT[]))", [experiments]))
        names = []
        for begin in begins:
            counts[begin.experiment_id] += 1
            names.append(begin.name or f"run-{counts[begin.experiment_id]}")
        begun = pl.DataFrame(
            [(b.run_id, b.experiment_id, name, b.config, b.worker, b.at) for b, name in zip(begins, names, strict=True)],
            schema={"id": pl.Int64, "experiment_id": pl.Int64, "name": pl.String, "config": pl.String, "worker": pl.String, "moment": pl.Datetime("us")},
            orient="row",
        )
        con.register("begun", begun)
        try:
            rows(con, _INSERT_BEGUN)
        finally:
            con.unregister("begun")
        return begins

    def _ended(self, run_ids: list[int]) -> None:
        """Runs that end inside a write: their long series are due curve overviews (the store's idle upkeep)."""
        if self._db is not None:
            self._db.touch_ended(run_ids)

    def _overviews_stale(self, con) -> None:
        """Rewritten steps keep a series' count and last step, which is all an overview checks: drop theirs."""
        overviews.drop(con)

    def build_overviews(self) -> None:
        """Build every curve overview due now, as the committer does anyway when idle: a test hook, so a test need not
        wait for the committer's idle moment."""
        while self._write(lambda con: self._keep_overviews(con, None), quiet=True):
            pass

    def _points_changed(self, run_ids: list[int]) -> None:
        """Every write of points passes here: the store server's cache keeps other runs' curves (core.read_cache).
        (While the file opens, replaying what a killed owner answered, there is no cache yet.)"""
        if self._db is not None:
            self._db.touch_points(run_ids)

    def get_metric_series(self, run_ids: list[int], keys: list[str] | None = None, max_points: int | None = 1000) -> pl.DataFrame:
        run_ids = checked_series_request(run_ids, keys, max_points)
        if not run_ids:
            run_ids = [0]  # matches nothing, and keeps the query's shape
        if max_points is None:
            query, params = whole_series_query(run_ids, keys)
            return self._statement(lambda con: frame(con, query, params)).sort("run_id", "key", "step")
        buckets = max_points // 2
        params = {"runs": run_ids, "keys": keys, "low": min(run_ids), "high": max(run_ids), "buckets": buckets,
                  "ended": ENDED_VALUES, "floor": None}
        key_filter = "AND list_contains($keys, s.key)" if keys is not None else "AND $keys IS NULL"
        if not self._overviews_kept:
            query = _SERIES.format(key_filter=key_filter, overview_flag=_NO_OVERVIEW_FLAG, overview_points="")
        else:
            # a growing overview answers no finer buckets than its own (FINE)
            params |= {"level": overviews.level_for(buckets), "fine": overviews.FINE}
            query = _SERIES.format(key_filter=key_filter, overview_flag=_OVERVIEW_FLAG, overview_points=_OVERVIEW_POINTS)
        if not self._overviews_kept or buckets > overviews.FINE or self._growing.isdisjoint(run_ids):
            series = self._statement(lambda con: frame(con, query, params))
        else:
            # Two statements, one snapshot: the points of growing series are read past a step given as a value,
            # which DuckDB checks against each row group's min/max (from a join, it filters every point of the run).
            floor = _TAIL_FLOOR.format(key_filter=key_filter, overview_flag=_OVERVIEW_FLAG)
            asked = {name: params[name] for name in ("runs", "keys", "buckets", "ended", "level", "fine")}
            series = self._read(lambda con: frame(con, query, {**params, "floor": first(con, floor, asked)[0]}))
        return series.sort("run_id", "key", "step")



def whole_series_query(run_ids: list[int], keys: list[str] | None) -> tuple[str, dict]:
    """Every point of the runs, filtered with `IN` lists of bound parameters: DuckDB checks those against each
    row group's min/max and skips the rest, ~0.5 ms faster than list_contains on a 10-run history."""
    run_params = {f"run{index}": run_id for index, run_id in enumerate(run_ids)}
    key_params = {f"key{index}": key for index, key in enumerate(keys or [])}
    runs = ", ".join(f"${name}" for name in run_params)
    key_filter = ""
    if keys is not None:
        key_filter = f"AND key IN ({', '.join(f'${name}' for name in key_params)})" if keys else "AND false"
    return _WHOLE_SERIES.format(runs=runs, key_filter=key_filter), run_params | key_params


_WHOLE_SERIES = """
    SELECT run_id, key, step, value, wall_time FROM metrics WHERE run_id IN ({runs}) {key_filter}
"""

# Series short enough come whole; longer ones keep the lowest and highest point of each step bucket, taken from
# the series' overview where one holds for these buckets (core.overviews: the same answer from far fewer rows).
# `run_id BETWEEN $low AND $high` repeats what list_contains says in a form DuckDB checks against each
# row group's min/max, so a few runs' points are read without scanning every point in the store.
# A running run's long series are bucketed by powers of two (core.overviews), answered from the overview grown so
# far and the points logged after it.
_SERIES = (
    """
    WITH sizes AS (
        SELECT s.run_id, s.key, s.count AS n, s.last_step,
               CASE WHEN NOT list_contains($ended, r.status) THEN """
    + overviews.SHIFT.format(last_step="s.last_step", buckets="$buckets")
    + """ END AS shift,
               {overview_flag}
        WHERE list_contains($runs, s.run_id) {key_filter}
    ),
    long AS (SELECT * FROM sizes WHERE n > 2 * $buckets),
    candidates AS (
        SELECT m.run_id, m.key, m.step, m.value, m.wall_time, z.last_step, z.shift
        FROM metrics m JOIN (SELECT * FROM long WHERE NOT overview) z ON z.run_id = m.run_id AND z.key = m.key
        WHERE m.run_id BETWEEN $low AND $high AND (z.grown_to IS NULL OR m.step > z.grown_to) AND ($floor IS NULL OR m.step > $floor)
        {overview_points}
    )
    SELECT m.run_id, m.key, m.step, m.value, m.wall_time
    FROM metrics m SEMI JOIN (SELECT * FROM sizes WHERE n <= 2 * $buckets) z ON z.run_id = m.run_id AND z.key = m.key
    WHERE m.run_id BETWEEN $low AND $high
    UNION ALL ("""
    + overviews.BUCKETED
    + """)
"""
)

# The lowest step past which every point the read takes from `metrics` for its long series lies: the least step a
# growing overview reaches, NULL when some long series is read whole.
_TAIL_FLOOR = """
    WITH sizes AS (
        SELECT s.run_id, s.key, s.count AS n, {overview_flag}
        WHERE list_contains($runs, s.run_id) {key_filter}
    )
    SELECT CASE WHEN bool_and(grown_to IS NOT NULL) THEN min(grown_to) END FROM sizes WHERE n > 2 * $buckets AND NOT overview
"""

# Whether a series' overview holds (same count and last step), and its points at the read's level. A read-only
# file from before the overviews has no such tables: its reads take every point.
_OVERVIEW_FLAG = """o.run_id IS NOT NULL AND $level IS NOT NULL AS overview,
               CASE WHEN NOT list_contains($ended, r.status) AND $buckets <= $fine THEN g.last_step END AS grown_to
        FROM metric_summaries s
        JOIN runs r ON r.id = s.run_id
        LEFT JOIN metric_overviews o ON o.run_id = s.run_id AND o.key = s.key AND o.count = s.count AND o.last_step = s.last_step
        LEFT JOIN growing_overviews g ON g.run_id = s.run_id AND g.key = s.key"""
_OVERVIEW_POINTS = """UNION ALL
        SELECT p.run_id, p.key, p.step, p.value, p.wall_time, z.last_step, z.shift
        FROM overview_points p JOIN (SELECT * FROM long WHERE overview) z ON z.run_id = p.run_id AND z.key = p.key
        WHERE p.level = $level AND p.run_id BETWEEN $low AND $high
        UNION ALL
        SELECT p.run_id, p.key, p.step, p.value, p.wall_time, z.last_step, z.shift
        FROM growing_points p JOIN (SELECT * FROM long WHERE grown_to IS NOT NULL) z ON z.run_id = p.run_id AND z.key = p.key
        WHERE p.run_id BETWEEN $low AND $high"""
_NO_OVERVIEW_FLAG = """false AS overview, NULL::BIGINT AS grown_to
        FROM metric_summaries s
        JOIN runs r ON r.id = s.run_id"""

