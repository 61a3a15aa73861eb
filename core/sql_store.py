"""The store's domain operations in SQL that both backends run: DuckDB as written (`core.duckdb_store`, one
owner process per file) and PostgreSQL through `core.pg_connection` (`core.postgres_store`, team mode).

One class, so an operation's rules (validation, status changes, counters, best metrics, adapter versions) are written
once. A backend supplies how a transaction, a snapshot read and a one-statement read run, and the metric reads it is
fast at; the hooks below (`_begin_early`, `_points_changed`, ...) are where the embedded owner adds its own speed.
"""

import json
from abc import abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import TypeAdapter

from core.aliases import checked_alias
from core.dataset_labels import SCRIPT_DATASET
from core.datasets import confine
from core.directions import Direction, direction_for, rank
from core.entities import (
    Adapter,
    AdapterAlias,
    AdapterRef,
    AdapterSpec,
    BestMetric,
    Experiment,
    ExperimentCreate,
    ExperimentPage,
    MetricKey,
    MetricSummary,
    Name,
    Run,
    utcnow,
    without_nul,
)
from core.errors import ConflictError, DatasetError, InvalidTransitionError, NotFoundError, ValidationError, quoted
from core.filters import (
    RUN_COLUMNS,
    RunFilter,
    experiment_order,
    experiment_where,
    metric_column,
    run_filters,
    run_order,
)
from core.points import MAX_WHOLE, check_run_id, check_step, checked_points
from core.run_params import IMPORT_WORKER, MAX_PARAMS, as_json_value, params_problem
from core.sample_rows import SAMPLE_COLUMNS, SampleRow, checked_samples, samples_frame
from core.sql import first, frame, rows
from core.sql_annotations import Annotations
from core.status import ACTIVE, ExperimentStatus, RunStatus, can_transition, experiment_status
from core.store import TrackingStore
from core.validation import friendly

MAX_PAGE_SIZE = 500
MAX_SERIES_POINTS = 100_000_000  # a downsampled read's points per curve at most: past it, ask for every point
MAX_LOG_CHUNK = 1_000_000  # characters one append keeps: the end of a flood of output, which says how it ended
# The experiment's counter of runs in each state: status and run count follow from these, updated per event.
COUNTERS = {
    RunStatus.QUEUED: "active_runs",
    RunStatus.RUNNING: "active_runs",
    RunStatus.COMPLETED: "completed_runs",
    RunStatus.FAILED: "failed_runs",
    RunStatus.CANCELLED: "cancelled_runs",
}
COUNTER_COLUMNS = ("active_runs", "completed_runs", "failed_runs", "cancelled_runs")


NAME = TypeAdapter(Name)  # built once: building one costs ~0.4 ms, most of what a run start may cost


def _from_ms(value: Any, what: str) -> datetime | None:
    """Epoch milliseconds (an importer's times) as the store keeps times: naive UTC."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 253_402_300_800_000:  # before 10000
        raise ValidationError(f"{what} must be whole milliseconds since 1970 before the year 10000, got {value!r}")
    return datetime.fromtimestamp(value / 1000, UTC).replace(tzinfo=None)


def as_id(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{what} ID must be a positive whole number, got {value!r}")
    if value > MAX_WHOLE:
        raise ValidationError(f"{what} ID {value} is larger than any ID TuneDeck gives out")
    return value


def _json_object(params: Any, what: str) -> str:
    if not isinstance(params, dict) or not all(isinstance(key, str) and key for key in params):
        raise ValidationError(f"{what} must be a dict with non-empty string keys")
    if problem := params_problem(params, what):
        raise ValidationError(problem)
    try:
        return json.dumps(params, sort_keys=True, allow_nan=False, default=as_json_value)
    except ValueError:
        raise ValidationError(f"{what} must not contain NaN or infinite numbers") from None


class SqlStore(Annotations, TrackingStore):
    """The domain operations on the store's tables; a subclass runs them on its database."""

    def __init__(self, *, clock: Callable[[], datetime] = utcnow, dataset_roots: list[Path] | None = None):
        self.clock = clock
        self.dataset_roots = dataset_roots  # None: any dataset reference is accepted

    # -- what each backend supplies ----------------------------------------------------------------
    @abstractmethod
    def _write(self, op: Callable[[Any], Any], quiet: bool = False) -> Any:
        """Run `op(con)` in one transaction; `quiet`: a write too frequent to log (points)."""
        raise NotImplementedError

    @abstractmethod
    def _read(self, query: Callable[[Any], Any]) -> Any:
        """Run reads that see one state of the store."""
        raise NotImplementedError

    @abstractmethod
    def _statement(self, query: Callable[[Any], Any]) -> Any:
        """Run a read of one statement, which sees one state by itself."""
        raise NotImplementedError

    @abstractmethod
    def reading(self) -> AbstractContextManager:
        """Reads that see one state of the store: nested calls share it."""
        raise NotImplementedError

    def _begin_early(self, experiment: int | str, config: str, name: str | None, worker: str) -> int | None:
        """A run's start answered before its transaction (the embedded owner's); None: the ordinary path."""
        return None

    def _end_early(self, run_id: int, status: RunStatus, points: pl.DataFrame | None, error, traceback) -> bool:
        """A run's end answered before its transaction (the embedded owner's); False: the ordinary path."""
        return False

    def _ended(self, run_ids: list[int]) -> None:
        """Runs that ended inside a write."""

    def _points_changed(self, run_ids: list[int]) -> None:
        """Every write of points passes here (after it is in the transaction)."""

    def _overviews_stale(self, con) -> None:
        """Steps were rewritten: any curve overview kept of them no longer holds."""

    def build_overviews(self) -> None:
        """Build what the backend keeps beside the points to read long curves fast, if anything."""

    def now(self) -> datetime:
        return self.clock()

    # -- experiments -------------------------------------------------------------------------
    def create_experiment(self, spec: ExperimentCreate | dict) -> int:
        spec = self._checked_experiment(spec)
        return self._write(lambda con: self._insert_experiment(con, spec))

    def _checked_experiment(self, spec: ExperimentCreate | dict) -> ExperimentCreate:
        spec = friendly(ExperimentCreate, spec, "experiment")
        if self.dataset_roots is not None:
            try:
                confine(spec.dataset, self.dataset_roots)
            except DatasetError as error:
                raise ValidationError(f"invalid experiment: {error}", {"dataset": str(error)}) from None
        return spec

    def _insert_experiment(self, con, spec: ExperimentCreate) -> int:
        self._require_free_name(con, spec.name)
        now = self.clock()
        (experiment_id,) = first(
            con,
            "INSERT INTO experiments (id, name, dataset, description, status, primary_metric, created_at, updated_at) "
            "VALUES (nextval('experiment_ids'), ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [spec.name, spec.dataset, spec.description, ExperimentStatus.CREATED.value, spec.primary_metric, now, now],
        )
        return experiment_id

    def get_experiment(self, experiment_id: int) -> Experiment:
        experiment_id = as_id(experiment_id, "experiment")
        experiments = self._read(lambda con: self._experiments(con, "WHERE e.id = ?", [experiment_id]))
        if not experiments:
            raise NotFoundError(f"no experiment with ID {experiment_id}")
        return experiments[0]

    def list_experiments(
        self,
        *,
        status=None,
        name_contains=None,
        include_deleted=False,
        sort="created_at",
        descending=True,
        page=1,
        page_size=20,
    ) -> ExperimentPage:
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            raise ValidationError(f"page must be a whole number from 1, got {page!r}")
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValidationError(f"page size must be a whole number from 1 to {MAX_PAGE_SIZE}, got {page_size!r}")
        where, params = experiment_where(status, name_contains, include_deleted)
        order = experiment_order(sort, descending)

        def query(con) -> ExperimentPage:
            (total,) = first(con, f"SELECT count(*) FROM experiments e {where}", params)
            items = self._experiments(con, where, params, order=order, limit=page_size, offset=(page - 1) * page_size)
            return ExperimentPage(items=items, total=total, page=page, page_size=page_size)

        return self._read(query)

    def find_experiment(self, name: str) -> Experiment | None:
        _require_text(name, "experiment name")
        found = self._read(lambda con: self._experiments(con, "WHERE e.name = ? AND e.deleted_at IS NULL", [name]))
        return found[0] if found else None

    def rename_experiment(self, experiment_id: int, name: str) -> None:
        name = friendly(NAME, name, "name")

        def op(con) -> None:
            self._require_live(con, experiment_id)
            self._require_free_name(con, name, other_than=experiment_id)
            rows(con, "UPDATE experiments SET name = ?, updated_at = ? WHERE id = ?", [name, self.clock(), experiment_id])

        self._write(op)

    def delete_experiment(self, experiment_id: int) -> list[int]:
        def op(con) -> list[int]:
            self._require_live(con, experiment_id)
            active = [
                row[0]
                for row in rows(
                    con,
                    "SELECT id FROM runs WHERE experiment_id = ? AND list_contains(?, status) ORDER BY id",
                    [experiment_id, [s.value for s in ACTIVE]],
                )
            ]
            for run_id in active:
                self._transition(con, run_id, RunStatus.CANCELLED, error="cancelled because the experiment was deleted")
            now = self.clock()
            rows(con, "UPDATE experiments SET deleted_at = ?, updated_at = ? WHERE id = ?", [now, now, experiment_id])
            return active

        return self._write(op)

    def restore_experiment(self, experiment_id: int, name: str | None = None) -> None:
        experiment_id = as_id(experiment_id, "experiment")
        if name is not None:
            name = friendly(NAME, name, "name")

        def op(con) -> None:
            found = self._experiments(con, "WHERE e.id = ?", [experiment_id])
            if not found:
                raise NotFoundError(f"no experiment with ID {experiment_id}")
            if not found[0].is_deleted:
                raise ConflictError(f"experiment {experiment_id} is not deleted; there is nothing to restore")
            self._require_free_name(con, name or found[0].name)
            rows(
                con,
                "UPDATE experiments SET name = ?, deleted_at = NULL, updated_at = ? WHERE id = ?",
                [name or found[0].name, self.clock(), experiment_id],
            )

        self._write(op)

    def set_primary_metric(self, experiment_id: int, key: str | None) -> None:
        if key is not None:
            key = friendly(TypeAdapter(MetricKey), key, "primary metric")

        def op(con) -> None:
            self._require_live(con, experiment_id)
            rows(
                con, "UPDATE experiments SET primary_metric = ?, updated_at = ? WHERE id = ?", [key, self.clock(), experiment_id]
            )

        self._write(op)

    def set_metric_direction(self, experiment_id: int, key: str, direction: Direction | None) -> None:
        key = friendly(TypeAdapter(MetricKey), key, "metric key")
        if direction is not None:
            direction = friendly(TypeAdapter(Direction), direction, "direction")

        def op(con) -> None:
            experiment = self._live_experiment(con, experiment_id)
            overrides = dict(experiment.metric_directions)
            if direction is None:
                overrides.pop(key, None)
            else:
                overrides[key] = direction
            rows(
                con,
                "UPDATE experiments SET metric_directions = ?, updated_at = ? WHERE id = ?",
                [json.dumps(overrides), self.clock(), experiment_id],
            )
            self._recompute_best(con, experiment_id)

        self._write(op)

    # -- runs ----------------------------------------------------------------------------------
    def create_run(self, experiment_id: int, config: dict[str, Any], name: str | None = None) -> int:
        if name is not None:
            name = friendly(NAME, name, "run name")
        encoded = _json_object(config, "config")

        def op(con) -> int:
            return self._insert_run(con, self._require_live(con, experiment_id), encoded, name, RunStatus.QUEUED)

        return self._write(op)

    def create_runs(self, experiment_id: int, configs: list[dict[str, Any]]) -> list[int]:
        if not isinstance(configs, list | tuple) or not configs:
            raise ValidationError("a sweep needs at least one config")
        encoded = [_json_object(config, f"config {number}") for number, config in enumerate(configs, start=1)]

        def op(con) -> list[int]:
            experiment = self._live_experiment(con, experiment_id)
            return [self._insert_run(con, experiment.id, config, None, RunStatus.QUEUED) for config in encoded]

        return self._write(op)

    def begin_run(
        self,
        experiment: int | str,
        params: dict[str, Any] | None = None,
        *,
        worker: str,
        name: str | None = None,
        dataset: str = SCRIPT_DATASET,
    ) -> int:
        if name is not None:
            name = friendly(NAME, name, "run name")
        encoded = _json_object(params or {}, "params")
        if not isinstance(worker, str) or not worker:
            raise ValidationError("worker must name the process that runs the run, e.g. 'host:1234'")
        if isinstance(experiment, bool) or not isinstance(experiment, int | str):
            raise ValidationError(f"experiment must be an ID or a name, got {type(experiment).__name__}")
        spec = None
        if isinstance(experiment, str):
            spec = self._checked_experiment({"name": experiment, "dataset": dataset})
        early = self._begin_early(experiment if spec is None else spec.name, encoded, name, worker)
        if early is not None:
            return early

        def op(con) -> int:
            if spec is None:
                experiment_id = self._require_live(con, experiment)
            else:  # found, then held as live (a delete on another machine waits for this run, or this run for it)
                found = first(con, "SELECT id FROM experiments WHERE name = ? AND deleted_at IS NULL", [spec.name])
                experiment_id = self._require_live(con, found[0]) if found else self._insert_experiment(con, spec)
            now = self.clock()
            return self._insert_run(
                con, experiment_id, encoded, name, RunStatus.RUNNING,
                worker=worker, created_at=now, started_at=now, heartbeat_at=now, attempt=1,
            )

        try:
            return self._write(op)
        except ConflictError:
            if spec is None:
                raise
            # Another machine made the experiment of that name a moment ago, or deleted the one found: looked up again,
            # this run joins the live one (or starts it anew).
            return self._write(op)

    def _insert_run(self, con, experiment_id: int, config: str, name: str | None, status: RunStatus, **fields: Any) -> int:
        run_count = self._count_run(con, experiment_id, None, status)
        created = fields.pop("created_at", None) or self.clock()
        columns = ["experiment_id", "name", "status", "config", "created_at", *fields]  # names from this module only
        values = [experiment_id, name or f"run-{run_count}", status.value, config, created, *fields.values()]
        names, placeholders = ", ".join(columns), ", ".join("?" for _ in columns)
        (run_id,) = first(con, f"INSERT INTO runs (id, {names}) VALUES (nextval('run_ids'), {placeholders}) RETURNING id", values)
        return run_id

    def log_params(self, run_id: int, params: dict[str, Any]) -> None:
        encoded = _json_object(params, "params")

        def op(con) -> None:
            self._run_row(con, run_id)
            (config,) = first(con, "SELECT config FROM runs WHERE id = ?", [run_id])
            merged = {**json.loads(config), **json.loads(encoded)}
            if len(merged) > MAX_PARAMS:
                raise ValidationError(f"a run holds at most {MAX_PARAMS:,} params, and these would make {len(merged):,}")
            rows(con, "UPDATE runs SET config = ? WHERE id = ?", [json.dumps(merged, sort_keys=True), run_id])

        self._write(op)

    def set_job_id(self, run_id: int, job_id: str) -> None:
        if not isinstance(job_id, str) or not job_id or "\x00" in job_id:
            raise ValidationError("job ID must be non-empty text without NUL characters")

        def op(con) -> None:
            self._run_row(con, run_id)
            rows(con, "UPDATE runs SET job_id = ? WHERE id = ?", [job_id, run_id])

        self._write(op)

    def get_runs(self, run_ids: list[int]) -> list[Run]:
        if not isinstance(run_ids, list | tuple):
            raise ValidationError(f"run IDs must be a list, got {type(run_ids).__name__}")
        wanted = list(dict.fromkeys(as_id(run_id, "run") for run_id in run_ids))
        if not wanted:
            raise ValidationError("choose at least one run")
        found = self._read(lambda con: self._runs(con, "WHERE r.id IN (SELECT unnest(?::BIGINT[]))", [wanted]))
        runs = {run.id: run for run in found}
        missing = [run_id for run_id in wanted if run_id not in runs]
        if missing:
            raise NotFoundError(f"no run with ID {', '.join(map(str, missing))}")
        return [runs[run_id] for run_id in wanted]

    def list_runs(self, experiment_id: int) -> list[Run]:
        experiment_id = as_id(experiment_id, "experiment")

        def query(con) -> list[Run]:
            if not first(con, "SELECT 1 FROM experiments WHERE id = ?", [experiment_id]):
                raise NotFoundError(f"no experiment with ID {experiment_id}")
            return self._runs(con, "WHERE r.experiment_id = ?", [experiment_id])

        return self._read(query)

    def runs_table(
        self,
        experiment_id: int,
        where: list[RunFilter | str] | tuple = (),
        order_by: str | None = None,
        descending: bool = False,
    ) -> pl.DataFrame:
        experiment_id = as_id(experiment_id, "experiment")

        def query(con) -> pl.DataFrame:
            long = frame(con, _RUNS_WITH_LAST_VALUES, [experiment_id])
            if long.is_empty() and not first(con, "SELECT 1 FROM experiments WHERE id = ?", [experiment_id]):
                raise NotFoundError(f"no experiment with ID {experiment_id}")
            return long

        long = self._statement(query)  # the second statement runs only to tell an empty experiment from none
        keys = sorted(long["key"].drop_nulls().unique().to_list())
        condition, order = run_filters(where, keys), run_order(order_by, keys)
        last = [pl.col("last_value").filter(pl.col("key") == key).first().alias(metric_column(key)) for key in keys]
        run = [pl.col(column).first() for column in RUN_COLUMNS if column != "id"]
        table = long.group_by("id", maintain_order=True).agg(*run, *last)
        if condition is not None:
            table = table.filter(condition)
        if order is None:
            return table.sort("created_at", "id", descending=True)
        return table.sort(order, "id", descending=[descending, False], nulls_last=True)

    def list_active_runs(self) -> list[Run]:
        runs = self._read(lambda con: self._runs(con, "WHERE list_contains(?, r.status)", [[s.value for s in ACTIVE]]))
        return runs[::-1]

    def mark_running(self, run_id: int, worker: str) -> Run:
        def op(con) -> None:
            now = self.clock()
            self._transition(con, run_id, RunStatus.RUNNING, worker=worker, started_at=now, heartbeat_at=now)
            rows(con, "UPDATE runs SET attempt = attempt + 1 WHERE id = ?", [run_id])

        self._write(op)
        return self.get_run(run_id)

    def heartbeat(self, run_id: int) -> RunStatus:
        def op(con) -> str:
            self._run_row(con, run_id)
            beat = "UPDATE runs SET heartbeat_at = CASE WHEN status = 'running' THEN ? ELSE heartbeat_at END WHERE id = ? RETURNING status"
            return first(con, beat, [self.clock(), run_id])[0]  # an ended run's last beat stays before its end

        return RunStatus(self._write(op, quiet=True))

    def end_run(
        self,
        run_id: int,
        status: RunStatus | str,
        *,
        points: pl.DataFrame | None = None,
        adapter: AdapterSpec | dict | None = None,
        error: str | None = None,
        traceback: str | None = None,
    ) -> Adapter | None:
        try:
            status = RunStatus(status)
        except ValueError:
            status = None
        if status is None or not status.is_terminal:
            raise ValidationError("a run ends as completed, failed or cancelled")
        if adapter is not None:
            if status is not RunStatus.COMPLETED:
                raise ValidationError("only a completed run registers an adapter")
            adapter = friendly(AdapterSpec, adapter, "adapter")
        if points is not None:
            points = checked_points(points)
        run_id = as_id(run_id, "run")
        error, traceback = (None if text is None else without_nul(str(text)) for text in (error, traceback))
        if adapter is None and self._end_early(run_id, status, points, error, traceback):
            return None

        def op(con) -> Adapter | None:
            if points is not None and not points.is_empty():
                self._store_points(con, points)
            if status is RunStatus.FAILED:
                self._transition(con, run_id, status, error=one_line(error or "failed"), traceback=failure_detail(error, traceback))
                return None
            if status is RunStatus.CANCELLED:
                self._transition(con, run_id, status, error="cancelled by the user")
                return None
            experiment_id = self._transition(con, run_id, RunStatus.COMPLETED)
            registered = self._register_adapter(con, run_id, experiment_id, adapter) if adapter else None
            self._improve_best(con, [run_id])
            return registered

        return self._write(op)

    def set_imported_times(self, run_id: int, started_ms: int | None, ended_ms: int | None) -> None:
        run_id = as_id(run_id, "run")
        started, ended = _from_ms(started_ms, "the start"), _from_ms(ended_ms, "the end")
        if started and ended and ended < started:
            raise ValidationError("an imported run cannot end before it started")

        def op(con) -> None:
            found = first(con, "SELECT status, worker FROM runs WHERE id = ?", [run_id])
            if found is None:
                raise NotFoundError(f"no run with ID {run_id}")
            if found[1] != IMPORT_WORKER or not RunStatus(found[0]).is_terminal:
                raise ValidationError(f"run {run_id} is not an imported run that has ended; only such a run takes its source's times")
            rows(
                con,
                "UPDATE runs SET created_at = coalesce(?, created_at), started_at = coalesce(?, started_at), "
                "ended_at = coalesce(?, ended_at) WHERE id = ?",
                [started, started, ended, run_id],
            )

        self._write(op)

    def fail_stale_runs(self, max_silence_seconds: float) -> list[int]:
        _check_seconds(max_silence_seconds, "the silence allowed")

        def op(con) -> list[int]:
            cutoff = self.clock() - timedelta(seconds=max_silence_seconds)
            stale = rows(
                con,
                "SELECT id, worker, heartbeat_at FROM runs WHERE status = ? AND heartbeat_at < ? ORDER BY id",
                [RunStatus.RUNNING.value, cutoff],
            )
            for run_id, worker, heartbeat_at in stale:
                error = f"worker lost: {worker or 'the worker'} sent no heartbeat since {heartbeat_at:%Y-%m-%d %H:%M:%S} UTC"
                self._transition(con, run_id, RunStatus.FAILED, error=error)
            return [row[0] for row in stale]

        return self._write(op)

    def fail_queued_without_job(self, live_job_ids: list[str], older_than_seconds: float) -> list[int]:
        if not isinstance(live_job_ids, list | tuple) or not all(isinstance(job, str) for job in live_job_ids):
            raise ValidationError("live job IDs must be a list of text")
        _check_seconds(older_than_seconds, "the age of a queued run")

        def op(con) -> list[int]:
            cutoff = self.clock() - timedelta(seconds=older_than_seconds)
            orphans = rows(
                con,
                "SELECT id, job_id FROM runs WHERE status = ? AND created_at < ? "
                "AND (job_id IS NULL OR NOT list_contains(?, job_id)) ORDER BY id",
                [RunStatus.QUEUED.value, cutoff, list(live_job_ids)],
            )
            for run_id, job_id in orphans:
                what = (
                    f"its job {job_id} is not in the queue the workers read (taken off it, or queued on another: every "
                    "machine needs the same TUNEDECK_QUEUE_URL)"
                    if job_id
                    else "it was never put on the queue"
                )
                self._transition(con, run_id, RunStatus.FAILED, error=f"run stayed queued but {what}; start it again")
            return [row[0] for row in orphans]

        return self._write(op)

    # -- metrics ---------------------------------------------------------------------------------
    def log_metrics(self, points: pl.DataFrame) -> int:
        points = checked_points(points)
        if points.is_empty():
            return 0
        return self._write(lambda con: self._store_points(con, points), quiet=True)

    def _store_points(self, con, points: pl.DataFrame) -> int:
        series = points.group_by("run_id", "key").agg(
            points=pl.len(), steps=pl.col("step").n_unique(), first_step=pl.col("step").min()
        )
        if (series["points"] != series["steps"]).any():
            points = points.unique(subset=["run_id", "key", "step"], keep="last", maintain_order=True)
        con.register("points", points)
        con.register("series", series)
        try:
            unknown, rewrites, continued, completed_in = first(con, _BATCH_CHECK)
            if unknown:
                raise NotFoundError(f"cannot log metrics for unknown run ID {', '.join(map(str, unknown))}")
            if rewrites:
                self._rewrite_points(con)
                self._overviews_stale(con)
            else:
                self._append_points(con, new_series_only=not continued)
            for experiment_id in completed_in or []:  # a joined process's last flush, a journal replayed late
                self._recompute_best(con, experiment_id)
        finally:
            con.unregister("points")
            con.unregister("series")
        self._points_changed(series["run_id"].unique().to_list())
        return points.height

    def verify_integrity(self) -> list[str]:
        counters = ", ".join(COUNTER_COLUMNS)

        def query(con) -> tuple:
            return (
                rows(con, _SUMMARY_MISMATCHES),
                rows(con, _DUPLICATE_POINTS),
                rows(con, _BROKEN_LINKS),
                rows(con, "SELECT experiment_id, status, count(*) FROM runs GROUP BY ALL"),
                rows(con, f"SELECT id, status, run_count, {counters} FROM experiments"),
            )

        mismatches, duplicates, broken, counts, stored = self._read(query)
        problems = [f"metric summary of run {run_id} key {key!r} disagrees with its points" for run_id, key in mismatches]
        problems += [f"run {run_id} key {key!r} step {step} is stored {n} times" for run_id, key, step, n in duplicates]
        problems += [f"{what} {ref} points at a missing row" for what, ref in broken]
        by_experiment: dict[int, dict[RunStatus, int]] = {row[0]: {} for row in stored}
        for experiment_id, status, n in counts:
            by_experiment.setdefault(experiment_id, {})[RunStatus(status)] = n
        for experiment_id, status, run_count, *counters in stored:
            runs = by_experiment.get(experiment_id, {})
            expected = experiment_status(runs)
            if status != expected.value:
                problems.append(f"experiment {experiment_id} is {status} but its runs make it {expected.value}")
            if [run_count, *counters] != [sum(runs.values()), *_counter_values(runs)]:
                problems.append(f"experiment {experiment_id}'s run counters disagree with its runs")
        return problems

    # -- prediction samples ----------------------------------------------------------------------
    def log_samples(self, run_id: int, step: int, rows: list[SampleRow] | list[dict]) -> int:
        run_id, step = check_run_id(run_id), check_step(step)
        batch = samples_frame(run_id, step, checked_samples(rows))

        def op(con) -> int:
            self._run_row(con, run_id)
            self._replace_samples(con, batch)
            return batch.height

        return self._write(op) if batch.height else 0

    def _replace_samples(self, con, batch: pl.DataFrame) -> None:
        """Drop the (run, step, example) rows the batch logs again, then insert the batch: idempotent. One statement
        of bound rows each (a batch is at most a thousand rows), so PostgreSQL runs them as written."""
        run_id, step = batch["run_id"][0], batch["step"][0]
        rows(
            con,
            "DELETE FROM samples WHERE run_id = ? AND step = ? AND list_contains(?, example_id)",
            [run_id, step, batch["example_id"].to_list()],
        )
        row = "(" + ", ".join("?" for _ in range(batch.width + 1)) + ")"
        placeholders = ", ".join(row for _ in range(batch.height))
        values = [value for record in batch.iter_rows() for value in (*record, self.clock())]
        rows(con, f"INSERT INTO samples ({_SAMPLE_NAMES}, logged_at) VALUES {placeholders}", values)

    def get_samples(self, run_ids: list[int], step: int | None = None) -> pl.DataFrame:
        wanted = checked_run_ids(run_ids) or [0]
        step_filter, params = ("AND step = ?", [check_step(step)]) if step is not None else ("", [])
        placeholders = ", ".join("?" for _ in wanted)
        query = (
            f"SELECT {_SAMPLE_NAMES} FROM samples WHERE run_id IN ({placeholders}) {step_filter} ORDER BY run_id, step, position"
        )
        return self._samples(query, [*wanted, *params])

    def get_latest_samples(self, run_ids: list[int]) -> pl.DataFrame:
        wanted = checked_run_ids(run_ids) or [0]
        placeholders = ", ".join("?" for _ in wanted)
        names = ", ".join(f"s.{name}" for name in SAMPLE_COLUMNS)
        query = (
            f"SELECT {names} FROM samples s JOIN (SELECT run_id, max(step) AS step FROM samples WHERE run_id IN ({placeholders}) "
            "GROUP BY run_id) latest ON latest.run_id = s.run_id AND latest.step = s.step ORDER BY s.run_id, s.position"
        )
        return self._samples(query, wanted)

    def _samples(self, query: str, params: list) -> pl.DataFrame:
        found = self._statement(lambda con: frame(con, query, params))
        return found.cast(SAMPLE_COLUMNS) if found.height else pl.DataFrame(schema=SAMPLE_COLUMNS)

    def list_sample_steps(self, run_id: int) -> list[int]:
        run_id = check_run_id(run_id)

        found = self._statement(
            lambda con: rows(
                con,
                "SELECT DISTINCT s.step FROM runs r LEFT JOIN samples s ON s.run_id = r.id WHERE r.id = ? ORDER BY s.step",
                [run_id],
            )
        )
        if not found:
            raise NotFoundError(f"no run with ID {run_id}")
        return [step for (step,) in found if step is not None]

    # -- run logs ----------------------------------------------------------------------------------
    def append_log(self, run_id: int, text: str) -> None:
        if not isinstance(text, str):
            raise ValidationError(f"log text must be text, got {type(text).__name__}")
        if not text:
            return
        text = without_nul(text)  # a progress bar or a binary's output can print NUL: kept as U+FFFD
        if len(text) > MAX_LOG_CHUNK:
            text = f"[{len(text) - MAX_LOG_CHUNK:,} characters of output left out]\n" + text[-MAX_LOG_CHUNK:]

        def op(con) -> None:
            self._run_row(con, run_id)
            rows(
                con,
                "INSERT INTO run_logs (run_id, seq, lines, text) "
                "SELECT ?, coalesce(max(seq), 0) + 1, ?, ? FROM run_logs WHERE run_id = ?",
                [run_id, text.count("\n"), text, run_id],
            )

        self._write(op)

    def read_log(self, run_id: int, tail_lines: int | None = 200) -> str:
        run_id = as_id(run_id, "run")
        if tail_lines is not None and (isinstance(tail_lines, bool) or not isinstance(tail_lines, int) or tail_lines < 1):
            raise ValidationError(f"tail_lines must be a whole number from 1, or None for all, got {tail_lines!r}")
        # The newest chunks that hold the last tail_lines lines (a chunk's last line may be unfinished: hence + 1).
        chunks = self._statement(
            lambda con: rows(
                con,
                "SELECT text FROM (SELECT seq, text, sum(lines) OVER (ORDER BY seq DESC) - lines AS after FROM run_logs "
                "WHERE run_id = ?) newest WHERE after <= coalesce(?, after) ORDER BY seq",
                [run_id, tail_lines],
            )
        )
        lines = "".join(chunk for (chunk,) in chunks).splitlines()
        return "\n".join(lines if tail_lines is None else lines[-tail_lines:])

    # -- adapters ----------------------------------------------------------------------------------
    def get_adapter(self, adapter_id: int) -> Adapter:
        adapter_id = as_id(adapter_id, "adapter")
        found = self._statement(lambda con: frame(con, "SELECT * FROM adapters WHERE id = ?", [adapter_id]).to_dicts())
        if not found:
            raise NotFoundError(f"no adapter with ID {adapter_id}")
        return Adapter.model_validate(found[0])

    def list_adapters(self, experiment_id: int | None = None) -> list[Adapter]:
        where, params = (
            ("WHERE experiment_id = ?", [as_id(experiment_id, "experiment")]) if experiment_id is not None else ("", [])
        )
        found = self._statement(
            lambda con: frame(con, f"SELECT * FROM adapters {where} ORDER BY created_at DESC, id DESC", params).to_dicts()
        )
        return [Adapter.model_validate(row) for row in found]

    def find_adapter(self, name: str, version: int | None = None, alias: str | None = None) -> Adapter:
        name = friendly(NAME, name, "adapter name")
        if version is not None:
            as_id(version, "adapter version")
        if alias is not None:
            alias = checked_alias(alias)
        if version is not None and alias is not None:
            raise ValidationError("ask for an adapter by version or by alias, not both")

        def query(con) -> Adapter:
            if alias is not None:
                found = frame(con, _ADAPTER_BY_ALIAS, [name, alias])
            elif version is not None:
                found = frame(con, "SELECT * FROM adapters WHERE name = ? AND version = ?", [name, version])
            else:
                found = frame(con, "SELECT * FROM adapters WHERE name = ? ORDER BY version DESC LIMIT 1", [name])
            if found.is_empty():
                raise NotFoundError(self._missing_adapter(con, name, version, alias))
            return Adapter.model_validate(found.row(0, named=True))

        return self._read(query)

    @staticmethod
    def _missing_adapter(con, name: str, version: int | None, alias: str | None) -> str:
        """Why nothing matched, with what does exist, so the next try is right."""
        versions = [row[0] for row in rows(con, "SELECT version FROM adapters WHERE name = ? ORDER BY version", [name])]
        if not versions:
            names = [row[0] for row in rows(con, "SELECT DISTINCT name FROM adapters ORDER BY name LIMIT 20")]
            known = f"adapter names are: {', '.join(names)}" if names else "no adapter is registered yet"
            return f"no adapter named {quoted(name)}; {known}"
        if version is not None:
            return f"adapter {quoted(name)} has no version {version}; its versions are {_span(versions)}"
        aliases = [row[0] for row in rows(con, "SELECT alias FROM adapter_aliases WHERE name = ? ORDER BY alias", [name])]
        known = f"its aliases are: {', '.join(aliases)}" if aliases else "it has no aliases yet (set one on the adapter's page)"
        return f"adapter {quoted(name)} has no alias {quoted(alias)}; {known}"

    def set_adapter_alias(self, adapter_id: int, alias: str) -> AdapterAlias:
        adapter_id = as_id(adapter_id, "adapter")
        alias = checked_alias(alias)

        def op(con) -> AdapterAlias:
            found = first(con, "SELECT name FROM adapters WHERE id = ?", [adapter_id])
            if found is None:
                raise NotFoundError(f"no adapter with ID {adapter_id}")
            # one set before aliases were kept in lower case, spelt with capitals, is this alias too: it moves
            rows(con, "DELETE FROM adapter_aliases WHERE name = ? AND lower(alias) = ? AND alias <> ?", [found[0], alias, alias])
            rows(
                con,
                "INSERT INTO adapter_aliases (name, alias, adapter_id, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name, alias) DO UPDATE SET adapter_id = excluded.adapter_id, updated_at = excluded.updated_at",
                [found[0], alias, adapter_id, self.clock()],
            )
            return self._aliases(con, "WHERE l.name = ? AND l.alias = ?", [found[0], alias])[0]

        return self._write(op)

    def remove_adapter_alias(self, name: str, alias: str, version: int | None = None) -> None:
        name = friendly(NAME, name, "adapter name")
        alias = checked_alias(alias)
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise ValidationError(f"version must be a positive whole number, got {version!r}")

        def op(con) -> None:
            if version is not None:
                found = rows(
                    con,
                    "SELECT a.version FROM adapter_aliases l JOIN adapters a ON a.id = l.adapter_id "
                    "WHERE l.name = ? AND lower(l.alias) = ?",
                    [name, alias],
                )
                if found and found[0][0] != version:
                    raise ConflictError(f"the alias {name}@{alias} points at v{found[0][0]} now, not v{version}; nothing was removed")
            if not rows(con, "DELETE FROM adapter_aliases WHERE name = ? AND lower(alias) = ? RETURNING alias", [name, alias]):
                raise NotFoundError(f"adapter {quoted(name)} has no alias {quoted(alias)}; nothing was removed")

        self._write(op)

    def list_adapter_aliases(self, name: str | None = None) -> list[AdapterAlias]:
        if name is not None:
            _require_text(name, "adapter name")
        where, params = ("WHERE l.name = ?", [name]) if name is not None else ("", [])
        return self._read(lambda con: self._aliases(con, where, params))

    @staticmethod
    def _aliases(con, where: str, params: list) -> list[AdapterAlias]:
        found = frame(
            con,
            "SELECT l.name, l.alias, l.adapter_id, a.version, l.updated_at "
            f"FROM adapter_aliases l JOIN adapters a ON a.id = l.adapter_id {where} ORDER BY l.name, l.alias",
            params,
        )
        return [AdapterAlias.model_validate(row) for row in found.to_dicts()]

    # -- helpers that run inside an open transaction ------------------------------------------------
    def _experiments(
        self, con, where: str, params: list, order: str = "", limit: int | None = None, offset: int = 0
    ) -> list[Experiment]:
        paging, paging_params = ("LIMIT ? OFFSET ?", [limit, offset]) if limit is not None else ("", [])
        found = frame(con, f"SELECT e.* FROM experiments e {where} {order} {paging}", [*params, *paging_params])
        if found.is_empty():
            return []
        best = frame(
            con,
            "SELECT experiment_id, key, value, run_id FROM best_metrics WHERE list_contains(?, experiment_id) ORDER BY key",
            [found["id"].to_list()],
        )
        tags, notes = self._annotations(con, "experiment", found["id"].to_list())
        best_of: dict[int, list[dict]] = {}  # grouped in one pass: a filter per experiment cost 5 ms a page of 20
        for b in best.to_dicts():
            best_of.setdefault(b.pop("experiment_id"), []).append(b)
        return [
            self._experiment(
                {**row, "tags": tags.get(row["id"], {}), "note": notes.get(row["id"], "")}, best_of.get(row["id"], [])
            )
            for row in found.to_dicts()
        ]

    @staticmethod
    def _experiment(row: dict, best: list[dict]) -> Experiment:
        """An experiment from its row and its best_metrics rows (key, value, run_id)."""
        overrides = _directions(row["metric_directions"])
        # Ordered by key here, not by the database: PostgreSQL's collation would put "accuracy" before "BLEU" and pick
        # another primary metric than the embedded store for the same runs.
        directed = [(b, direction_for(b["key"], overrides)) for b in sorted(best, key=lambda b: b["key"])]
        best_metrics = [BestMetric(**b, direction=direction) for b, direction in directed if direction is not None]
        keys = [b.key for b in best_metrics]
        primary = row["primary_metric"] or next((key for key in ("eval_loss", "loss") if key in keys), None)
        primary = primary or (keys[0] if keys else "eval_loss")  # an import's rouge1, say: what its runs logged
        return Experiment.model_validate(
            {**row, "metric_directions": overrides, "best_metrics": best_metrics, "primary_metric": primary}
        )

    def _runs(self, con, where: str, params: list) -> list[Run]:
        found = frame(
            con,
            f"""
            SELECT r.*, a.name AS adapter_name, a.version AS adapter_version
            FROM runs r LEFT JOIN adapters a ON a.id = r.adapter_id
            {where} ORDER BY r.created_at DESC, r.id DESC
            """,
            params,
        )
        if found.is_empty():
            return []
        summaries = frame(
            con,
            "SELECT run_id, key, last_value AS last, last_step, min_value AS min, max_value AS max, count "
            "FROM metric_summaries WHERE list_contains(?, run_id) ORDER BY key",
            [found["id"].to_list()],
        )
        by_run: dict[int, dict[str, MetricSummary]] = {}
        for summary in summaries.to_dicts():
            by_run.setdefault(summary.pop("run_id"), {})[summary["key"]] = MetricSummary.model_validate(summary)
        tags, notes = self._annotations(con, "run", found["id"].to_list())
        return [
            self._run({**row, "tags": tags.get(row["id"], {}), "note": notes.get(row["id"], "")}, by_run.get(row["id"], {}))
            for row in found.to_dicts()
        ]

    @staticmethod
    def _run(row: dict, metrics: dict[str, MetricSummary]) -> Run:
        adapter = None
        if row["adapter_id"] is not None:
            adapter = AdapterRef(id=row["adapter_id"], name=row["adapter_name"], version=row["adapter_version"])
        return Run.model_validate({**row, "config": json.loads(row["config"]), "adapter": adapter, "metrics": metrics})

    def _live_experiment(self, con, experiment_id: int) -> Experiment:
        experiment_id = self._require_live(con, experiment_id)
        return self._experiments(con, "WHERE e.id = ?", [experiment_id])[0]

    @staticmethod
    def _require_live(con, experiment_id: int) -> int:
        """The ID of a live experiment; NotFoundError or ConflictError (deleted) otherwise."""
        experiment_id = as_id(experiment_id, "experiment")
        found = first(con, "SELECT name, deleted_at FROM experiments WHERE id = ?", [experiment_id])
        if found is None:
            raise NotFoundError(f"no experiment with ID {experiment_id}")
        if found[1] is not None:
            raise ConflictError(f"experiment {experiment_id} ({quoted(found[0])}) is deleted; restore it first")
        return experiment_id

    @staticmethod
    def _require_free_name(con, name: str, other_than: int | None = None) -> None:
        taken = first(
            con,
            "SELECT id FROM experiments WHERE name = ? AND deleted_at IS NULL AND id IS DISTINCT FROM ?",
            [name, other_than],
        )
        if taken:
            raise ConflictError(
                f"an experiment named {quoted(name)} already exists (ID {taken[0]}); pick another name or delete that one"
            )

    @staticmethod
    def _run_row(con, run_id: int) -> tuple[RunStatus, int]:
        run_id = as_id(run_id, "run")
        row = first(con, "SELECT status, experiment_id FROM runs WHERE id = ?", [run_id])
        if row is None:
            raise NotFoundError(f"no run with ID {run_id}")
        return RunStatus(row[0]), row[1]

    def _transition(self, con, run_id: int, new: RunStatus, **fields: Any) -> int:
        """Move a run to a new status and its experiment's counters with it, in the same transaction."""
        run_id = as_id(run_id, "run")
        sources = [status for status in RunStatus if can_transition(status, new)]
        if new.is_terminal:
            fields["ended_at"] = self.clock()
        columns = ["status", *fields]  # column names come from this module, never from input
        assignments = ", ".join(f"{column} = ?" for column in columns)
        changed = first(
            con,
            f"UPDATE runs SET {assignments} WHERE id = ? AND list_contains(?, status) RETURNING experiment_id",
            [new.value, *fields.values(), run_id, [status.value for status in sources]],
        )
        if changed is None:
            current, _ = self._run_row(con, run_id)  # NotFoundError for an unknown run
            raise InvalidTransitionError(f"run {run_id} is {current.value}; it cannot become {new.value}")
        if new.is_terminal:
            self._ended([run_id])
        # Every state a run may come from counts in the same counter (active_runs), so the source needs no read.
        self._count_run(con, changed[0], sources[0], new, error=fields.get("error") if new is RunStatus.FAILED else None)
        return changed[0]

    def _count_run(self, con, experiment_id: int, leaving: RunStatus | None, entering: RunStatus, error: str | None = None) -> int:
        """One run changed state: move the experiment's counters and its status with them in one statement (no scan
        of runs, no read first). Returns the experiment's run count."""
        deltas = dict.fromkeys(COUNTER_COLUMNS, 0)
        if leaving is not None:
            deltas[COUNTERS[leaving]] -= 1
        deltas[COUNTERS[entering]] += 1
        (run_count,) = first(
            con, COUNT_RUN, [*deltas.values(), int(leaving is None), *deltas.values(), error, self.clock(), experiment_id]
        )
        return run_count

    def _register_adapter(self, con, run_id: int, experiment_id: int, spec: AdapterSpec) -> Adapter:
        name = spec.name or first(con, "SELECT name FROM experiments WHERE id = ?", [experiment_id])[0]
        (adapter_id,) = first(
            con,
            """
            INSERT INTO adapters (id, name, version, path, base_model, size_bytes, checksum, run_id, experiment_id, created_at)
            SELECT nextval('adapter_ids'), ?, coalesce(max(version), 0) + 1, ?, ?, ?, ?, ?, ?, ?
            FROM adapters WHERE name = ?
            RETURNING id
            """,
            [name, spec.path, spec.base_model, spec.size_bytes, spec.checksum, run_id, experiment_id, self.clock(), name],
        )
        rows(con, "UPDATE runs SET adapter_id = ? WHERE id = ?", [adapter_id, run_id])
        return Adapter.model_validate(frame(con, "SELECT * FROM adapters WHERE id = ?", [adapter_id]).row(0, named=True))

    def _improve_best(self, con, run_ids: list[int]) -> None:
        """Let newly completed runs take the best value of each metric they beat (core.directions.rank)."""
        best: dict[tuple[int, str], tuple[float | None, int | None]] = {}
        overrides: dict[str, dict[str, Direction]] = {}  # each experiment's, read once for all its rows
        for run_id, experiment_id, key, value, stored, stored_run, raw in rows(con, _FINALS, [run_ids]):
            current = best.get((experiment_id, key), (stored, stored_run))
            if raw not in overrides:
                overrides[raw] = _directions(raw)
            if (direction := direction_for(key, overrides[raw])) is None:
                continue
            if current[0] is None or rank(value, run_id, direction) < rank(*current, direction):
                best[(experiment_id, key)] = (value, run_id)
        if best:  # one statement for all of them: one per metric cost ~2 ms each here
            (experiments, keys), (values, runs) = zip(*best, strict=True), zip(*best.values(), strict=True)
            rows(con, _BEST_UPSERT, [list(experiments), list(keys), list(values), list(runs)])

    def _recompute_best(self, con, experiment_id: int) -> None:
        rows(con, "DELETE FROM best_metrics WHERE experiment_id = ?", [experiment_id])
        completed = rows(
            con,
            "SELECT id FROM runs WHERE experiment_id = ? AND status = ?",
            [experiment_id, RunStatus.COMPLETED.value],
        )
        if completed:
            self._improve_best(con, [run_id for (run_id,) in completed])

    @staticmethod
    def _append_points(con, new_series_only: bool) -> None:
        """The common case: every point is past its series' last step, so summaries merge incrementally
        (a batch that only starts series, like a short run's, skips the merge: an upsert costs over twice an insert)."""
        rows(con, "INSERT INTO metrics SELECT run_id, key, step, value, wall_time FROM points")
        if new_series_only:
            rows(con, _NEW_SUMMARIES)
            return
        rows(con, _MERGED_SUMMARIES)

    @staticmethod
    def _rewrite_points(con) -> None:
        """Some steps were logged before: replace them and rebuild the touched summaries from the points."""
        rows(
            con,
            "DELETE FROM metrics USING points WHERE metrics.run_id = points.run_id AND metrics.key = points.key AND metrics.step = points.step",
        )
        rows(con, "INSERT INTO metrics SELECT run_id, key, step, value, wall_time FROM points")
        rows(
            con,
            """
            INSERT OR REPLACE INTO metric_summaries
            SELECT run_id, key, arg_max(value, step), max(step), arg_max(wall_time, step), min(value), max(value), count(*)
            FROM metrics
            WHERE (run_id, key) IN (SELECT DISTINCT run_id, key FROM points)
            GROUP BY run_id, key
            """,
        )



# experiment_status() over the counters after a change, in SQL. SET sees the row as it was, so the
# status adds the counters' deltas again (the deltas come in COUNTER_COLUMNS order, twice).
_STATUS_FROM_COUNTERS = (
    "CASE WHEN active_runs + ? > 0 THEN 'running' WHEN completed_runs + ? > 0 THEN 'completed' "
    "WHEN failed_runs + ? > 0 THEN 'failed' WHEN cancelled_runs + ? > 0 THEN 'cancelled' ELSE 'created' END"
)
COUNT_RUN = (
    "UPDATE experiments SET active_runs = active_runs + ?, completed_runs = completed_runs + ?, "
    "failed_runs = failed_runs + ?, cancelled_runs = cancelled_runs + ?, run_count = run_count + ?, "
    "status = " + _STATUS_FROM_COUNTERS + ", last_error = coalesce(?, last_error), updated_at = ? "
    "WHERE id = ? RETURNING run_count"
)


def _directions(raw: str) -> dict[str, Direction]:
    """An experiment's stored direction overrides."""
    return {key: Direction(value) for key, value in json.loads(raw).items()}


def checked_run_ids(run_ids: Any) -> list[int]:
    if not isinstance(run_ids, list | tuple):
        raise ValidationError(f"run IDs must be a list, got {type(run_ids).__name__}")
    return [check_run_id(run_id) for run_id in run_ids]


def _check_seconds(seconds: float, what: str) -> None:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ValidationError(f"{what} must be a positive number of seconds, got {seconds!r}")


def _require_text(value: Any, what: str) -> None:
    """A name looked up as given: any text (one no experiment could have finds nothing), but text."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be text, got {type(value).__name__}")


def checked_series_request(run_ids: Any, keys: Any, max_points: Any) -> list[int]:
    """get_metric_series' arguments checked at the store's boundary (both backends); the run IDs as ints."""
    run_ids = checked_run_ids(run_ids)
    if keys is not None and (not isinstance(keys, list | tuple) or not all(isinstance(key, str) for key in keys)):
        raise ValidationError("keys must be a list of metric names")
    if max_points is not None and (
        isinstance(max_points, bool) or not isinstance(max_points, int) or not 2 <= max_points <= MAX_SERIES_POINTS
    ):
        raise ValidationError(
            f"max_points must be a whole number from 2 to {MAX_SERIES_POINTS:,} (None for every point), got {max_points!r}"
        )
    return run_ids


def _counter_values(runs: dict[RunStatus, int]) -> list[int]:
    return [sum(n for status, n in runs.items() if COUNTERS[status] == column) for column in COUNTER_COLUMNS]


_NEW_SUMMARIES = """
    INSERT INTO metric_summaries
    SELECT run_id, key, arg_max(value, step), max(step), arg_max(wall_time, step), min(value), max(value), count(*)
    FROM points GROUP BY run_id, key
"""

_BEST_UPSERT = (
    "INSERT OR REPLACE INTO best_metrics "
    "SELECT unnest(?::BIGINT[]), unnest(?::VARCHAR[]), unnest(?::DOUBLE[]), unnest(?::BIGINT[])"
)
# Completed runs' last values beside their experiment's best so far and its directions.
_FINALS = """
    SELECT s.run_id, r.experiment_id, s.key, s.last_value, b.value, b.run_id, e.metric_directions
    FROM metric_summaries s
    JOIN runs r ON r.id = s.run_id
    JOIN experiments e ON e.id = r.experiment_id
    LEFT JOIN best_metrics b ON b.experiment_id = e.id AND b.key = s.key
    WHERE s.run_id IN (SELECT unnest(?::BIGINT[]))
"""

# Folding a batch into summaries that exist: the same clause on both backends (core/pg_connection.py).
SUMMARY_MERGE = """
    ON CONFLICT (run_id, key) DO UPDATE SET
        last_value = excluded.last_value,
        last_step = excluded.last_step,
        last_wall_time = excluded.last_wall_time,
        min_value = least(metric_summaries.min_value, excluded.min_value),
        max_value = greatest(metric_summaries.max_value, excluded.max_value),
        count = metric_summaries.count + excluded.count
"""
_MERGED_SUMMARIES = _NEW_SUMMARIES + SUMMARY_MERGE

# One look before a batch goes in: whether it rewrites steps already stored, and one look at its runs: those that do
# not exist, and the experiments of those completed (their best metrics may move).
_BATCH_CHECK = """
    SELECT r.unknown, m.rewrites, m.continued, r.completed_in
    FROM (
        SELECT count(s.run_id) FILTER (WHERE series.first_step <= s.last_step) AS rewrites, count(s.run_id) AS continued
        FROM series LEFT JOIN metric_summaries s USING (run_id, key)
    ) m, (
        SELECT list(DISTINCT series.run_id ORDER BY series.run_id) FILTER (WHERE runs.id IS NULL) AS unknown,
               list(DISTINCT runs.experiment_id ORDER BY runs.experiment_id) FILTER (WHERE runs.status = 'completed') AS completed_in
        FROM series LEFT JOIN runs ON runs.id = series.run_id
    ) r
"""

_SAMPLE_NAMES = ", ".join(SAMPLE_COLUMNS)  # names from core.sample_rows, never from input
_ADAPTER_BY_ALIAS = """
    SELECT a.* FROM adapters a JOIN adapter_aliases l ON l.adapter_id = a.id WHERE l.name = ? AND lower(l.alias) = ?
    ORDER BY l.updated_at DESC LIMIT 1
"""

_RUNS_WITH_LAST_VALUES = """
    SELECT r.id, r.name, r.status, r.created_at, r.ended_at, r.adapter_id, s.key, s.last_value
    FROM runs r LEFT JOIN metric_summaries s ON s.run_id = r.id
    WHERE r.experiment_id = ?
"""


_SUMMARY_MISMATCHES = """
    WITH raw AS (
        SELECT run_id, key, count(*) AS n, min(value) AS low, max(value) AS high, max(step) AS last_step, arg_max(value, step) AS last
        FROM metrics GROUP BY run_id, key
    )
    SELECT coalesce(raw.run_id, s.run_id), coalesce(raw.key, s.key)
    FROM raw FULL JOIN metric_summaries s ON s.run_id = raw.run_id AND s.key = raw.key
    WHERE s.count IS DISTINCT FROM raw.n OR s.min_value IS DISTINCT FROM raw.low OR s.max_value IS DISTINCT FROM raw.high
       OR s.last_step IS DISTINCT FROM raw.last_step OR s.last_value IS DISTINCT FROM raw.last
    ORDER BY 1, 2
"""
_DUPLICATE_POINTS = "SELECT run_id, key, step, count(*) FROM metrics GROUP BY ALL HAVING count(*) > 1 ORDER BY ALL LIMIT 100"
_BROKEN_LINKS = """
    SELECT 'points of run', DISTINCT_RUNS.run_id FROM (SELECT DISTINCT run_id FROM metrics) DISTINCT_RUNS ANTI JOIN runs ON runs.id = DISTINCT_RUNS.run_id
    UNION ALL SELECT 'run', r.id FROM runs r ANTI JOIN experiments e ON e.id = r.experiment_id
    UNION ALL SELECT 'adapter link of run', r.id FROM runs r WHERE r.adapter_id IS NOT NULL AND r.adapter_id NOT IN (SELECT id FROM adapters)
    UNION ALL SELECT 'best metric of experiment', b.experiment_id FROM best_metrics b ANTI JOIN runs r ON r.id = b.run_id
"""


def _span(versions: list[int]) -> str:
    """'1 to 3' for a run of versions, else the list."""
    if versions == list(range(versions[0], versions[-1] + 1)) and len(versions) > 2:
        return f"{versions[0]} to {versions[-1]}"
    return ", ".join(map(str, versions))


def failure_detail(error: str | None, traceback: str | None) -> str | None:
    """The traceback kept with a failure, led by the whole error where it has more lines than the one the run shows
    (they were dropped: "while running step 31 of 1000" was nowhere)."""
    lines = [line for line in str(error or "").strip().splitlines() if line.strip()]
    if len(lines) < 2:
        return traceback
    whole = "\n".join(lines)
    return f"{whole}\n\n{traceback}" if traceback else whole


def one_line(error: str) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    text = lines[0] if lines else "unknown error"
    return text if len(text) <= 1000 else text[:997] + "..."
