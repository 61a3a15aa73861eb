"""The tracking store on one DuckDB file, shared by many processes through the store server (core.db)."""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import TypeAdapter

from core.datasets import confine
from core.db import connect, read_session
from core.directions import Direction, direction_for, is_better
from core.entities import (
    Adapter,
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
    RunMetrics,
)
from core.errors import ConflictError, DatasetError, InvalidTransitionError, NotFoundError, ValidationError
from core.filters import (
    RUN_COLUMNS,
    RunFilter,
    experiment_order,
    experiment_where,
    metric_column,
    run_filters,
    run_order,
)
from core.sql import first, frame, rows
from core.status import ACTIVE, ExperimentStatus, RunStatus, can_transition, experiment_status
from core.store import TrackingStore
from core.validation import friendly

MAX_PAGE_SIZE = 500
POINT_SCHEMA = {"run_id": pl.Int64, "key": pl.String, "step": pl.Int64, "value": pl.Float64, "wall_time": pl.Datetime("us")}
PARALLEL_SORT_ROWS = 100_000  # below this, a sort on one thread beats waking Polars' thread pool


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _as_id(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{what} ID must be a positive whole number, got {value!r}")
    return value


class DuckDBStore(TrackingStore):
    def __init__(
        self,
        path: Path | str,
        *,
        clock: Callable[[], datetime] = utcnow,
        lock_timeout: float = 60.0,
        dataset_roots: list[Path] | None = None,
        server_idle_exit: float | None = None,
    ):
        self.path = Path(path)
        self.server_idle_exit = server_idle_exit  # None: use a running store server, never start one
        self.clock = clock
        self.lock_timeout = lock_timeout
        self.dataset_roots = dataset_roots  # None: any dataset reference is accepted

    def _write(self):
        return connect(self.path, timeout=self.lock_timeout, server_idle_exit=self.server_idle_exit)

    def _read(self, single: bool = False):
        """A read; `single` when it runs one statement (through the server it then needs no transaction)."""
        return connect(
            self.path, read_only=True, timeout=self.lock_timeout, server_idle_exit=self.server_idle_exit, single=single
        )

    def reading(self):
        return read_session(self.path, timeout=self.lock_timeout, server_idle_exit=self.server_idle_exit)

    # -- experiments -------------------------------------------------------------------------
    def create_experiment(self, spec: ExperimentCreate | dict) -> int:
        spec = friendly(ExperimentCreate, spec, "experiment")
        if self.dataset_roots is not None:
            try:
                confine(spec.dataset, self.dataset_roots)
            except DatasetError as error:
                raise ValidationError(f"invalid experiment: dataset: {error}", {"dataset": str(error)}) from None
        now = self.clock()
        with self._write() as con:
            self._require_free_name(con, spec.name)
            (experiment_id,) = first(
                con,
                "INSERT INTO experiments (id, name, dataset, description, status, primary_metric, created_at, updated_at) "
                "VALUES (nextval('experiment_ids'), ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                [spec.name, spec.dataset, spec.description, ExperimentStatus.CREATED.value, spec.primary_metric, now, now],
            )
        return experiment_id

    def get_experiment(self, experiment_id: int) -> Experiment:
        experiment_id = _as_id(experiment_id, "experiment")
        with self._read() as con:
            experiments = self._experiments(con, "WHERE e.id = ?", [experiment_id])
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
        with self._read() as con:
            (total,) = first(con, f"SELECT count(*) FROM experiments e {where}", params)
            items = self._experiments(con, where, params, order=order, limit=page_size, offset=(page - 1) * page_size)
        return ExperimentPage(items=items, total=total, page=page, page_size=page_size)

    def rename_experiment(self, experiment_id: int, name: str) -> None:
        name = friendly(TypeAdapter(Name), name, "name")
        with self._write() as con:
            self._live_experiment(con, experiment_id)
            self._require_free_name(con, name, other_than=experiment_id)
            rows(con, "UPDATE experiments SET name = ?, updated_at = ? WHERE id = ?", [name, self.clock(), experiment_id])

    def delete_experiment(self, experiment_id: int) -> list[int]:
        now = self.clock()
        with self._write() as con:
            self._live_experiment(con, experiment_id)
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
            rows(con, "UPDATE experiments SET deleted_at = ?, updated_at = ? WHERE id = ?", [now, now, experiment_id])
        return active

    def restore_experiment(self, experiment_id: int) -> None:
        experiment = self.get_experiment(experiment_id)
        if not experiment.is_deleted:
            raise ConflictError(f"experiment {experiment_id} is not deleted; there is nothing to restore")
        with self._write() as con:
            self._require_free_name(con, experiment.name)
            rows(con, "UPDATE experiments SET deleted_at = NULL, updated_at = ? WHERE id = ?", [self.clock(), experiment_id])

    def set_primary_metric(self, experiment_id: int, key: str | None) -> None:
        if key is not None:
            key = friendly(TypeAdapter(MetricKey), key, "primary metric")
        with self._write() as con:
            self._live_experiment(con, experiment_id)
            rows(
                con, "UPDATE experiments SET primary_metric = ?, updated_at = ? WHERE id = ?", [key, self.clock(), experiment_id]
            )

    def set_metric_direction(self, experiment_id: int, key: str, direction: Direction | None) -> None:
        key = friendly(TypeAdapter(MetricKey), key, "metric key")
        if direction is not None:
            direction = friendly(TypeAdapter(Direction), direction, "direction")
        with self._write() as con:
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
            self._recompute_best(con, experiment_id, overrides)

    # -- runs ----------------------------------------------------------------------------------
    def create_run(self, experiment_id: int, config: dict[str, Any], name: str | None = None) -> int:
        if name is not None:
            name = friendly(TypeAdapter(Name), name, "run name")
        now = self.clock()
        with self._write() as con:
            experiment = self._live_experiment(con, experiment_id)
            if name is None:
                (count,) = first(con, "SELECT count(*) FROM runs WHERE experiment_id = ?", [experiment.id])
                name = f"run-{count + 1}"
            (run_id,) = first(
                con,
                "INSERT INTO runs (id, experiment_id, name, status, config, created_at) "
                "VALUES (nextval('run_ids'), ?, ?, ?, ?, ?) RETURNING id",
                [experiment.id, name, RunStatus.QUEUED.value, json.dumps(config, sort_keys=True), now],
            )
            self._refresh_experiment(con, experiment.id)
        return run_id

    def log_params(self, run_id: int, params: dict[str, Any]) -> None:
        if not isinstance(params, dict) or not all(isinstance(key, str) and key for key in params):
            raise ValidationError("params must be a dict with non-empty string keys")
        try:
            encoded = json.dumps(params, sort_keys=True, allow_nan=False, default=str)
        except ValueError:
            raise ValidationError("params must not contain NaN or infinite numbers") from None
        with self._write() as con:
            self._run_row(con, run_id)
            (config,) = first(con, "SELECT config FROM runs WHERE id = ?", [run_id])
            merged = {**json.loads(config), **json.loads(encoded)}
            rows(con, "UPDATE runs SET config = ? WHERE id = ?", [json.dumps(merged, sort_keys=True), run_id])

    def find_experiment(self, name: str) -> Experiment | None:
        """The live experiment with this exact name, if any."""
        with self._read() as con:
            found = self._experiments(con, "WHERE e.name = ? AND e.deleted_at IS NULL", [name])
        return found[0] if found else None

    def set_job_id(self, run_id: int, job_id: str) -> None:
        with self._write() as con:
            self._run_row(con, run_id)
            rows(con, "UPDATE runs SET job_id = ? WHERE id = ?", [job_id, run_id])

    def get_runs(self, run_ids: list[int]) -> list[Run]:
        wanted = list(dict.fromkeys(_as_id(run_id, "run") for run_id in run_ids))
        if not wanted:
            raise ValidationError("choose at least one run")
        with self._read() as con:
            runs = {run.id: run for run in self._runs(con, "WHERE r.id IN (SELECT unnest(?::BIGINT[]))", [wanted])}
        missing = [run_id for run_id in wanted if run_id not in runs]
        if missing:
            raise NotFoundError(f"no run with ID {', '.join(map(str, missing))}")
        return [runs[run_id] for run_id in wanted]

    def list_runs(self, experiment_id: int) -> list[Run]:
        experiment_id = _as_id(experiment_id, "experiment")
        with self._read() as con:
            if not first(con, "SELECT 1 FROM experiments WHERE id = ?", [experiment_id]):
                raise NotFoundError(f"no experiment with ID {experiment_id}")
            return self._runs(con, "WHERE r.experiment_id = ?", [experiment_id])

    def runs_table(
        self,
        experiment_id: int,
        where: list[RunFilter | str] | tuple = (),
        order_by: str | None = None,
        descending: bool = False,
    ) -> pl.DataFrame:
        experiment_id = _as_id(experiment_id, "experiment")
        with self._read(single=True) as con:
            long = frame(con, _RUNS_WITH_LAST_VALUES, [experiment_id])
        if long.is_empty():
            with self._read(single=True) as con:
                if not first(con, "SELECT 1 FROM experiments WHERE id = ?", [experiment_id]):
                    raise NotFoundError(f"no experiment with ID {experiment_id}")
        keys = sorted(long["key"].drop_nulls().unique().to_list())
        condition, order = run_filters(where, keys), run_order(order_by, keys)
        last = [pl.col("last_value").filter(pl.col("key") == key).first().alias(metric_column(key)) for key in keys]
        # A pivot, at a quarter of pivot()'s cost: grouped by the run's ID alone, the other run columns ride along.
        run = [pl.col(column).first() for column in RUN_COLUMNS if column != "id"]
        table = long.group_by("id", maintain_order=True).agg(*run, *last)
        if condition is not None:
            table = table.filter(condition)
        threads = table.height > PARALLEL_SORT_ROWS
        if order is None:
            return table.sort("created_at", "id", descending=True, multithreaded=threads)
        return table.sort(order, "id", descending=[descending, False], nulls_last=True, multithreaded=threads)

    def list_active_runs(self) -> list[Run]:
        with self._read() as con:
            runs = self._runs(con, "WHERE list_contains(?, r.status)", [[s.value for s in ACTIVE]])
        return runs[::-1]

    def mark_running(self, run_id: int, worker: str) -> Run:
        now = self.clock()
        with self._write() as con:
            self._transition(con, run_id, RunStatus.RUNNING, worker=worker, started_at=now, heartbeat_at=now)
            rows(con, "UPDATE runs SET attempt = attempt + 1 WHERE id = ?", [run_id])
        return self.get_run(run_id)

    def heartbeat(self, run_id: int) -> RunStatus:
        with self._write() as con:
            self._run_row(con, run_id)
            (status,) = first(con, "UPDATE runs SET heartbeat_at = ? WHERE id = ? RETURNING status", [self.clock(), run_id])
        return RunStatus(status)

    def complete_run(self, run_id: int, adapter: AdapterSpec | dict | None = None) -> Adapter | None:
        if adapter is not None:
            adapter = friendly(AdapterSpec, adapter, "adapter")
        with self._write() as con:
            experiment_id = self._transition(con, run_id, RunStatus.COMPLETED)
            registered = self._register_adapter(con, run_id, experiment_id, adapter) if adapter else None
            overrides = self._overrides(con, experiment_id)
            self._improve_best(con, experiment_id, run_id, overrides)
        return registered

    def fail_run(self, run_id: int, error: str, traceback: str | None = None) -> None:
        with self._write() as con:
            self._transition(con, run_id, RunStatus.FAILED, error=_one_line(error), traceback=traceback)

    def cancel_run(self, run_id: int) -> None:
        with self._write() as con:
            self._transition(con, run_id, RunStatus.CANCELLED, error="cancelled by the user")

    def fail_stale_runs(self, max_silence: timedelta) -> list[int]:
        cutoff = self.clock() - max_silence
        with self._write() as con:
            stale = rows(
                con,
                "SELECT id, worker, heartbeat_at FROM runs WHERE status = ? AND heartbeat_at < ? ORDER BY id",
                [RunStatus.RUNNING.value, cutoff],
            )
            for run_id, worker, heartbeat_at in stale:
                error = f"worker lost: {worker or 'the worker'} sent no heartbeat since {heartbeat_at:%Y-%m-%d %H:%M:%S} UTC"
                self._transition(con, run_id, RunStatus.FAILED, error=error)
        return [row[0] for row in stale]

    # -- metrics ---------------------------------------------------------------------------------
    def log_metrics(self, points: pl.DataFrame) -> int:
        points = points.select(POINT_SCHEMA.keys()).cast(POINT_SCHEMA)
        if points.is_empty():
            return 0
        series = points.group_by("run_id", "key").agg(
            points=pl.len(), steps=pl.col("step").n_unique(), first_step=pl.col("step").min()
        )
        if (series["points"] != series["steps"]).any():
            points = points.unique(subset=["run_id", "key", "step"], keep="last", maintain_order=True)
        with self._write() as con:
            con.register("points", points)
            con.register("series", series)
            unknown = rows(con, "SELECT DISTINCT run_id FROM series ANTI JOIN runs ON runs.id = series.run_id ORDER BY 1")
            if unknown:
                raise NotFoundError(f"cannot log metrics for unknown run ID {', '.join(str(row[0]) for row in unknown)}")
            (rewrites,) = first(
                con,
                "SELECT count(*) FROM series JOIN metric_summaries s USING (run_id, key) WHERE series.first_step <= s.last_step",
            )
            if rewrites:
                self._rewrite_points(con)
            else:
                self._append_points(con)
            con.unregister("points")
            con.unregister("series")
        return points.height

    def get_run_metrics(self, run_id: int, keys: list[str] | None = None) -> RunMetrics:
        key_filter, params = ("AND list_contains(?, key)", [keys]) if keys is not None else ("", [])
        with self.reading(), self._read() as con:
            run = self.get_run(run_id)
            series = frame(
                con,
                f"SELECT key, step, value, wall_time FROM metrics WHERE run_id = ? {key_filter} ORDER BY key, step",
                [run.id, *params],
            )
        summary = {key: value for key, value in run.metrics.items() if keys is None or key in keys}
        return RunMetrics(run_id=run.id, series=series, summary=summary)

    def get_metric_series(self, run_ids: list[int], keys: list[str] | None = None, max_points: int | None = 1000) -> pl.DataFrame:
        run_ids = [_as_id(run_id, "run") for run_id in run_ids]
        if max_points is not None and (isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 2):
            raise ValidationError(f"max_points must be a whole number of at least 2, got {max_points!r}")
        if not run_ids:
            run_ids = [0]  # matches nothing, and keeps the query's shape
        if max_points is None:
            query, params = whole_series_query(run_ids, keys)
        else:
            params = {"runs": run_ids, "keys": keys, "low": min(run_ids), "high": max(run_ids), "buckets": max_points // 2}
            key_filter = "AND list_contains($keys, key)" if keys is not None else "AND $keys IS NULL"
            query = _SERIES.format(key_filter=key_filter)
        with self._read(single=True) as con:
            series = frame(con, query, params)
        return in_series_order(series, one_key=keys is not None and len(keys) == 1)

    def verify_integrity(self) -> list[str]:
        with self._read() as con:
            problems = [
                f"metric summary of run {run_id} key {key!r} disagrees with its points"
                for run_id, key in rows(con, _SUMMARY_MISMATCHES)
            ]
            problems += [
                f"run {run_id} key {key!r} step {step} is stored {n} times"
                for run_id, key, step, n in rows(con, _DUPLICATE_POINTS)
            ]
            problems += [f"{what} {ref} points at a missing row" for what, ref in rows(con, _BROKEN_LINKS)]
            counts = rows(con, "SELECT experiment_id, status, count(*) FROM runs GROUP BY ALL")
            stored = dict(rows(con, "SELECT id, status FROM experiments"))
        by_experiment: dict[int, dict[RunStatus, int]] = {experiment_id: {} for experiment_id in stored}
        for experiment_id, status, n in counts:
            by_experiment.setdefault(experiment_id, {})[RunStatus(status)] = n
        for experiment_id, runs in by_experiment.items():
            expected = experiment_status(runs)
            if stored.get(experiment_id) != expected.value:
                problems.append(
                    f"experiment {experiment_id} is {stored.get(experiment_id)} but its runs make it {expected.value}"
                )
        return problems

    # -- adapters ----------------------------------------------------------------------------------
    def get_adapter(self, adapter_id: int) -> Adapter:
        adapter_id = _as_id(adapter_id, "adapter")
        with self._read() as con:
            rows = frame(con, "SELECT * FROM adapters WHERE id = ?", [adapter_id]).to_dicts()
        if not rows:
            raise NotFoundError(f"no adapter with ID {adapter_id}")
        return Adapter.model_validate(rows[0])

    def list_adapters(self, experiment_id: int | None = None) -> list[Adapter]:
        where, params = (
            ("WHERE experiment_id = ?", [_as_id(experiment_id, "experiment")]) if experiment_id is not None else ("", [])
        )
        with self._read() as con:
            rows = frame(con, f"SELECT * FROM adapters {where} ORDER BY created_at DESC, id DESC", params).to_dicts()
        return [Adapter.model_validate(row) for row in rows]

    # -- helpers that run inside an open transaction ------------------------------------------------
    def _experiments(
        self, con, where: str, params: list, order: str = "", limit: int | None = None, offset: int = 0
    ) -> list[Experiment]:
        paging, paging_params = ("LIMIT ? OFFSET ?", [limit, offset]) if limit is not None else ("", [])
        found = frame(
            con,
            f"""
            WITH counts AS (SELECT experiment_id, count(*) AS run_count FROM runs GROUP BY experiment_id)
            SELECT e.*, coalesce(counts.run_count, 0) AS run_count
            FROM experiments e LEFT JOIN counts ON counts.experiment_id = e.id
            {where} {order} {paging}
            """,
            [*params, *paging_params],
        )
        if found.is_empty():
            return []
        best = frame(
            con,
            "SELECT experiment_id, key, value, run_id FROM best_metrics WHERE list_contains(?, experiment_id) ORDER BY key",
            [found["id"].to_list()],
        )
        return [self._experiment(row, best.filter(pl.col("experiment_id") == row["id"])) for row in found.to_dicts()]

    @staticmethod
    def _experiment(row: dict, best: pl.DataFrame) -> Experiment:
        overrides = {key: Direction(value) for key, value in json.loads(row["metric_directions"]).items()}
        best_metrics = [
            BestMetric(key=b["key"], value=b["value"], run_id=b["run_id"], direction=direction_for(b["key"], overrides))
            for b in best.to_dicts()
            if direction_for(b["key"], overrides) is not None
        ]
        keys = {b.key for b in best_metrics}
        primary = row["primary_metric"] or ("loss" if "loss" in keys and "eval_loss" not in keys else "eval_loss")
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
        return [self._run(row, by_run.get(row["id"], {})) for row in found.to_dicts()]

    @staticmethod
    def _run(row: dict, metrics: dict[str, MetricSummary]) -> Run:
        adapter = None
        if row["adapter_id"] is not None:
            adapter = AdapterRef(id=row["adapter_id"], name=row["adapter_name"], version=row["adapter_version"])
        return Run.model_validate({**row, "config": json.loads(row["config"]), "adapter": adapter, "metrics": metrics})

    def _live_experiment(self, con, experiment_id: int) -> Experiment:
        experiment_id = _as_id(experiment_id, "experiment")
        experiments = self._experiments(con, "WHERE e.id = ?", [experiment_id])
        if not experiments:
            raise NotFoundError(f"no experiment with ID {experiment_id}")
        if experiments[0].is_deleted:
            raise ConflictError(f"experiment {experiment_id} ({experiments[0].name!r}) is deleted; restore it first")
        return experiments[0]

    @staticmethod
    def _require_free_name(con, name: str, other_than: int | None = None) -> None:
        taken = first(
            con,
            "SELECT id FROM experiments WHERE name = ? AND deleted_at IS NULL AND id IS DISTINCT FROM ?",
            [name, other_than],
        )
        if taken:
            raise ConflictError(
                f"an experiment named {name!r} already exists (ID {taken[0]}); pick another name or delete that one"
            )

    @staticmethod
    def _run_row(con, run_id: int) -> tuple[RunStatus, int]:
        run_id = _as_id(run_id, "run")
        row = first(con, "SELECT status, experiment_id FROM runs WHERE id = ?", [run_id])
        if row is None:
            raise NotFoundError(f"no run with ID {run_id}")
        return RunStatus(row[0]), row[1]

    def _transition(self, con, run_id: int, new: RunStatus, **fields: Any) -> int:
        """Move a run to a new status and recompute its experiment's status in the same transaction."""
        current, experiment_id = self._run_row(con, run_id)
        if not can_transition(current, new):
            raise InvalidTransitionError(f"run {run_id} is {current.value}; it cannot become {new.value}")
        if new.is_terminal:
            fields["ended_at"] = self.clock()
        columns = ["status", *fields]  # column names come from this module, never from input
        assignments = ", ".join(f"{column} = ?" for column in columns)
        rows(con, f"UPDATE runs SET {assignments} WHERE id = ?", [new.value, *fields.values(), run_id])
        self._refresh_experiment(con, experiment_id)
        return experiment_id

    def _refresh_experiment(self, con, experiment_id: int) -> None:
        counts = dict(rows(con, "SELECT status, count(*) FROM runs WHERE experiment_id = ? GROUP BY status", [experiment_id]))
        status = experiment_status({RunStatus(key): value for key, value in counts.items()})
        last_failure = first(
            con,
            "SELECT error FROM runs WHERE experiment_id = ? AND status = ? ORDER BY ended_at DESC, id DESC LIMIT 1",
            [experiment_id, RunStatus.FAILED.value],
        )
        rows(
            con,
            "UPDATE experiments SET status = ?, last_error = ?, updated_at = ? WHERE id = ?",
            [status.value, last_failure[0] if last_failure else None, self.clock(), experiment_id],
        )

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

    @staticmethod
    def _overrides(con, experiment_id: int) -> dict[str, Direction]:
        (raw,) = first(con, "SELECT metric_directions FROM experiments WHERE id = ?", [experiment_id])
        return {key: Direction(value) for key, value in json.loads(raw).items()}

    def _improve_best(self, con, experiment_id: int, run_id: int, overrides: dict[str, Direction]) -> None:
        """Let a newly completed run take the best value of each metric it beats."""
        finals = rows(con, "SELECT key, last_value FROM metric_summaries WHERE run_id = ?", [run_id])
        current = dict(rows(con, "SELECT key, value FROM best_metrics WHERE experiment_id = ?", [experiment_id]))
        for key, value in finals:
            direction = direction_for(key, overrides)
            if direction is not None and is_better(value, current.get(key), direction):
                rows(con, "INSERT OR REPLACE INTO best_metrics VALUES (?, ?, ?, ?)", [experiment_id, key, value, run_id])

    def _recompute_best(self, con, experiment_id: int, overrides: dict[str, Direction]) -> None:
        rows(con, "DELETE FROM best_metrics WHERE experiment_id = ?", [experiment_id])
        completed = rows(
            con,
            "SELECT id FROM runs WHERE experiment_id = ? AND status = ? ORDER BY ended_at, id",
            [experiment_id, RunStatus.COMPLETED.value],
        )
        for (run_id,) in completed:
            self._improve_best(con, experiment_id, run_id, overrides)

    @staticmethod
    def _append_points(con) -> None:
        """The common case: every point is past its series' last step, so summaries merge incrementally."""
        rows(con, "INSERT INTO metrics SELECT run_id, key, step, value, wall_time FROM points")
        rows(
            con,
            """
            INSERT INTO metric_summaries
            SELECT run_id, key, arg_max(value, step), max(step), arg_max(wall_time, step), min(value), max(value), count(*)
            FROM points GROUP BY run_id, key
            ON CONFLICT (run_id, key) DO UPDATE SET
                last_value = excluded.last_value,
                last_step = excluded.last_step,
                last_wall_time = excluded.last_wall_time,
                min_value = least(metric_summaries.min_value, excluded.min_value),
                max_value = greatest(metric_summaries.max_value, excluded.max_value),
                count = metric_summaries.count + excluded.count
            """,
        )

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


def in_series_order(series: pl.DataFrame, one_key: bool) -> pl.DataFrame:
    """The points by run, key and step, sorted here rather than in SQL (DuckDB's ORDER BY cost ~0.9 ms of a
    ~2.4 ms history).

    Points of one key usually come back in order already (a writer stores each run's steps in order, and one
    run's flush after another), and checking that costs ~0.02 ms where a sort costs 0.1 to 0.4 ms. A small
    frame sorts on one thread: waking Polars' thread pool costs more than it saves.
    """
    threads = series.height > PARALLEL_SORT_ROWS
    if not one_key:
        return series.sort("run_id", "key", "step", multithreaded=threads)
    run, step = series["run_id"].to_numpy(), series["step"].to_numpy()
    same_run = run[1:] == run[:-1]
    if np.all((run[1:] > run[:-1]) | (same_run & (step[1:] > step[:-1]))):
        return series
    return series.sort("run_id", "step", multithreaded=threads)


_RUNS_WITH_LAST_VALUES = """
    SELECT r.id, r.name, r.status, r.created_at, r.ended_at, r.adapter_id, s.key, s.last_value
    FROM runs r LEFT JOIN metric_summaries s ON s.run_id = r.id
    WHERE r.experiment_id = ?
"""


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

# Series short enough come whole; longer ones keep the lowest and highest point of each step bucket.
# `run_id BETWEEN $low AND $high` repeats what list_contains says in a form DuckDB checks against each
# row group's min/max, so a few runs' points are read without scanning every point in the store.
_SERIES = """
    WITH sizes AS (
        SELECT run_id, key, count AS n, last_step FROM metric_summaries WHERE list_contains($runs, run_id) {key_filter}
    ),
    whole AS (
        SELECT m.run_id, m.key, m.step, m.value, m.wall_time
        FROM metrics m SEMI JOIN (SELECT * FROM sizes WHERE n <= 2 * $buckets) z ON z.run_id = m.run_id AND z.key = m.key
        WHERE m.run_id BETWEEN $low AND $high
    ),
    bucketed AS (
        SELECT m.run_id, m.key, floor(m.step::DOUBLE * $buckets / (z.last_step + 1))::BIGINT AS bucket,
               arg_min(m.step, m.value) AS low_step, min(m.value) AS low, arg_min(m.wall_time, m.value) AS low_time,
               arg_max(m.step, m.value) AS high_step, max(m.value) AS high, arg_max(m.wall_time, m.value) AS high_time
        FROM metrics m JOIN (SELECT * FROM sizes WHERE n > 2 * $buckets) z ON z.run_id = m.run_id AND z.key = m.key
        WHERE m.run_id BETWEEN $low AND $high
        GROUP BY ALL
    )
    SELECT * FROM whole
    UNION ALL SELECT run_id, key, low_step, low, low_time FROM bucketed
    UNION ALL SELECT run_id, key, high_step, high, high_time FROM bucketed WHERE high_step <> low_step
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


def _one_line(error: str) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    text = lines[0] if lines else "unknown error"
    return text if len(text) <= 1000 else text[:997] + "..."
