"""The tracking store contract: everything the app, the workers and the SDK may ask of storage.

Implementations keep the primitives; the conveniences at the bottom are built on them once.
Every primitive is one whole operation (one request to the store's owner, one transaction there),
so no caller ever holds a connection, a lock or a transaction between calls.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_type_hints

import polars as pl

from core.aliases import parse_reference
from core.dataset_labels import SCRIPT_DATASET
from core.directions import Direction
from core.errors import NotFoundError
from core.status import ExperimentStatus, RunStatus

if TYPE_CHECKING:  # imported when a convenience or a decoder needs them (see return_type): a client that only
    # lists runs as a frame, a cold `python -c` say, never loads Pydantic
    from core.entities import (
        Adapter,
        AdapterAlias,
        AdapterSpec,
        Experiment,
        ExperimentCreate,
        ExperimentDetail,
        ExperimentPage,
        Run,
        RunComparison,
        RunMetrics,
        Target,
    )
    from core.filters import RunFilter
    from core.sample_rows import SampleRow


class TrackingStore(ABC):
    # Whether the store's owner puts in the points of writers that died before storing them (core.journal): the
    # embedded store's server does; PostgreSQL runs no owner of ours, so each machine's writers and workers look.
    replays_journals = True

    @property
    @abstractmethod
    def data_dir(self) -> Path:
        """The folder beside the store that holds logs, adapters and metric journals."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the store lives, safe to show: its file, or its database's URL without a password."""

    # -- experiments ---------------------------------------------------------------------
    @abstractmethod
    def create_experiment(self, spec: ExperimentCreate) -> int:
        """Store a new experiment and return its ID. Names are unique among live experiments."""

    @abstractmethod
    def get_experiment(self, experiment_id: int) -> Experiment:
        """One experiment, deleted or not; NotFoundError when the ID is unknown."""

    @abstractmethod
    def list_experiments(
        self,
        *,
        status: ExperimentStatus | Iterable[ExperimentStatus] | None = None,
        name_contains: str | None = None,
        include_deleted: bool = False,
        sort: str = "created_at",
        descending: bool = True,
        page: int = 1,
        page_size: int = 20,
    ) -> ExperimentPage:
        """One page of experiments (1-based) and the total that match the filters."""

    @abstractmethod
    def find_experiment(self, name: str) -> Experiment | None:
        """The live experiment with this exact name, or None."""

    @abstractmethod
    def rename_experiment(self, experiment_id: int, name: str) -> None:
        """Give a live experiment a new name that no other live experiment has."""

    @abstractmethod
    def delete_experiment(self, experiment_id: int) -> list[int]:
        """Soft-delete: hide the experiment, cancel its queued and running runs, keep all history.

        Returns the IDs of the runs it cancelled.
        """

    @abstractmethod
    def restore_experiment(self, experiment_id: int, name: str | None = None) -> None:
        """Undo a delete, under a new name if given; ConflictError if a live experiment has the name it would take."""

    @abstractmethod
    def set_primary_metric(self, experiment_id: int, key: str | None) -> None:
        """Choose the metric that ranks runs; None goes back to eval_loss, else loss, else the first logged (by name)."""

    @abstractmethod
    def set_metric_direction(self, experiment_id: int, key: str, direction: Direction | None) -> None:
        """Override whether lower or higher is better for a key; None restores the name rule."""

    # -- runs ------------------------------------------------------------------------------
    @abstractmethod
    def create_run(self, experiment_id: int, config: dict[str, Any], name: str | None = None) -> int:
        """Store a queued run of a live experiment and return its ID."""

    @abstractmethod
    def create_runs(self, experiment_id: int, configs: list[dict[str, Any]]) -> list[int]:
        """Store several queued runs of a live experiment in one transaction (a sweep): all of them, or none."""

    @abstractmethod
    def begin_run(
        self,
        experiment: int | str,
        params: dict[str, Any] | None = None,
        *,
        worker: str,
        name: str | None = None,
        dataset: str = SCRIPT_DATASET,
    ) -> int:
        """A run a script runs itself, in one transaction: find the live experiment by ID or name (a new name creates
        it with `dataset`), store the run as running under `worker`, and return its ID."""

    @abstractmethod
    def log_params(self, run_id: int, params: dict[str, Any]) -> None:
        """Merge parameters into the run's config (a script's hyperparameters, say)."""

    @abstractmethod
    def set_job_id(self, run_id: int, job_id: str) -> None:
        """Remember the queue's ID for the run so it can be revoked."""

    @abstractmethod
    def get_runs(self, run_ids: list[int]) -> list[Run]:
        """The runs asked for, in the order asked; NotFoundError names any unknown ID."""

    @abstractmethod
    def list_runs(self, experiment_id: int) -> list[Run]:
        """All runs of an experiment, newest first, with metric summaries and adapter."""

    @abstractmethod
    def runs_table(
        self,
        experiment_id: int,
        where: list[RunFilter | str] | tuple = (),
        order_by: str | None = None,
        descending: bool = False,
    ) -> pl.DataFrame:
        """One row per run (id, name, status, created_at, ended_at, adapter_id) and one column per metric with
        its last value: the fast way to list, filter ("accuracy > 0.5") and sort many runs. Newest first unless
        `order_by` names a metric or run column; runs lacking that metric come last. A metric named like a
        run column (`status`) gets the column `metric:status`."""

    @abstractmethod
    def list_active_runs(self) -> list[Run]:
        """Queued and running runs of every experiment, oldest first: what the workers have to do."""

    @abstractmethod
    def mark_running(self, run_id: int, worker: str) -> Run:
        """queued -> running: count the attempt, note the worker, start the heartbeat."""

    @abstractmethod
    def heartbeat(self, run_id: int) -> RunStatus:
        """Note that the worker is alive; returns the run's status so a worker sees a cancel."""

    @abstractmethod
    def end_run(
        self,
        run_id: int,
        status: RunStatus | str,
        *,
        points: pl.DataFrame | None = None,
        adapter: AdapterSpec | None = None,
        error: str | None = None,
        traceback: str | None = None,
    ) -> Adapter | None:
        """Store the run's last points and move it to completed (registering the adapter and updating best metrics),
        failed (keeping the one-line error and the traceback) or cancelled, all in one transaction."""

    def complete_run(self, run_id: int, adapter: AdapterSpec | None = None) -> Adapter | None:
        """running -> completed, registering the adapter and updating best metrics in one transaction."""
        return self.end_run(run_id, RunStatus.COMPLETED, adapter=adapter)

    def fail_run(self, run_id: int, error: str, traceback: str | None = None) -> None:
        """-> failed, keeping the one-line error and the traceback."""
        self.end_run(run_id, RunStatus.FAILED, error=error, traceback=traceback)

    def cancel_run(self, run_id: int) -> None:
        """queued or running -> cancelled; a running job stops at its next heartbeat."""
        self.end_run(run_id, RunStatus.CANCELLED)

    @abstractmethod
    def set_imported_times(self, run_id: int, started_ms: int | None, ended_ms: int | None) -> None:
        """An imported run that has ended takes its source's start and end (epoch milliseconds, None: keep), so its
        dates and duration are its own, not the import's; its creation is its start."""

    @abstractmethod
    def fail_stale_runs(self, max_silence_seconds: float) -> list[int]:
        """Fail running runs whose heartbeat is older than this: their worker is lost."""

    @abstractmethod
    def fail_queued_without_job(self, live_job_ids: list[str], older_than_seconds: float) -> list[int]:
        """Fail queued runs older than this whose job is not among the queue's live jobs: no worker will ever run them."""

    # -- metrics ---------------------------------------------------------------------------
    @abstractmethod
    def log_metrics(self, points: pl.DataFrame) -> int:
        """Append points (run_id, key, step, value, wall_time) and keep run summaries current.

        Logging the same (run_id, key, step) again replaces the value. Returns points stored.
        """

    @abstractmethod
    def get_metric_series(self, run_ids: list[int], keys: list[str] | None = None, max_points: int | None = 1000) -> pl.DataFrame:
        """Curves for charts: columns run_id, key, step, value, wall_time, ordered by run, key and step.

        A series longer than max_points is downsampled in the query to the lowest and highest
        point of each step bucket, so spikes survive and 50 long runs still draw at once. A run with no
        points of the keys asked, or an ID no run has, adds no rows: this is what a chart draws, and pages
        ask it for queued runs every few seconds (get_runs is the call that says an ID is unknown).
        """

    @abstractmethod
    def verify_integrity(self) -> list[str]:
        """What disagrees with the raw data: summaries vs points, duplicate points, broken links,
        experiment statuses that do not follow from their runs. Empty when the store is sound."""

    # -- prediction samples --------------------------------------------------------------------
    @abstractmethod
    def log_samples(self, run_id: int, step: int, rows: list[SampleRow]) -> int:
        """Store what the run answered on eval examples at `step` (rows: SampleRow or dicts of its fields).

        Logging the same (run, step, example_id) again replaces it. Returns the rows stored.
        """

    @abstractmethod
    def get_samples(self, run_ids: list[int], step: int | None = None) -> pl.DataFrame:
        """Samples of the runs at `step` (every step when None): columns run_id, step, example_id, position, input,
        reference, prediction, score, correct, extra (JSON text), ordered by run, step and position."""

    @abstractmethod
    def get_latest_samples(self, run_ids: list[int]) -> pl.DataFrame:
        """Each run's samples at its own last sample step (its latest evaluation), as get_samples returns them:
        what a comparison of runs shows, in one request however many runs."""

    @abstractmethod
    def list_sample_steps(self, run_id: int) -> list[int]:
        """The steps at which the run logged samples, in order."""

    # -- run logs ----------------------------------------------------------------------------
    @abstractmethod
    def append_log(self, run_id: int, text: str) -> None:
        """Add output to the end of a run's log (the worker streams its training process's output here)."""

    @abstractmethod
    def read_log(self, run_id: int, tail_lines: int | None = 200) -> str:
        """The last tail_lines lines of a run's log, all of it for None; '' before any output."""

    # -- adapters ----------------------------------------------------------------------------
    @abstractmethod
    def get_adapter(self, adapter_id: int) -> Adapter:
        """One adapter; NotFoundError when unknown."""

    @abstractmethod
    def list_adapters(self, experiment_id: int | None = None) -> list[Adapter]:
        """Adapters, newest first, optionally of one experiment."""

    # -- tags, notes and search ------------------------------------------------------------------
    @abstractmethod
    def set_tags(self, target: Target, target_id: int, tags: dict[str, Any]) -> None:
        """Add or replace tags (name -> text; numbers and booleans are kept as text) on an experiment or a run;
        its other tags stay. A run's search sees its experiment's tags too, its own winning."""

    @abstractmethod
    def remove_tags(self, target: Target, target_id: int, keys: list[str]) -> None:
        """Take these tags off an experiment or a run; a name it does not carry is ignored."""

    @abstractmethod
    def set_note(self, target: Target, target_id: int, note: str) -> None:
        """Replace the Markdown note of an experiment or a run; empty text removes it."""

    @abstractmethod
    def search_frame(self, experiment_ids: list[int] | None = None) -> pl.DataFrame:
        """One row per run of these experiments (default: every live experiment), newest first, with every field
        the search language names (see core.search_frame): what a search page asks for, in one request."""

    @abstractmethod
    def find_adapter(self, name: str, version: int | None = None, alias: str | None = None) -> Adapter:
        """The adapter of this name at a version, or the one an alias points at, or else its latest version;
        NotFoundError says which names, versions or aliases exist."""

    # -- adapter aliases ---------------------------------------------------------------------------
    @abstractmethod
    def set_adapter_alias(self, adapter_id: int, alias: str) -> AdapterAlias:
        """Point `alias` of the adapter's name at this version, moving it off the version that had it, in one
        transaction: an alias names at most one version of a name at any time."""

    @abstractmethod
    def remove_adapter_alias(self, name: str, alias: str, version: int | None = None) -> None:
        """Take an alias off its adapter name; NotFoundError when the name has no such alias. With a version, only
        while the alias points at it (a page drawn before someone moved the alias): ConflictError otherwise."""

    @abstractmethod
    def list_adapter_aliases(self, name: str | None = None) -> list[AdapterAlias]:
        """Aliases by adapter name then alias, of every name or of one."""

    def resolve_adapter(self, reference: str) -> Adapter:
        """'sentiment@production', 'sentiment@3' or 'sentiment' (its latest version) to the adapter. A name that holds
        an '@' itself (an experiment named 'model@2' names its adapters so) is found whole first."""
        if isinstance(reference, str) and "@" in reference:
            try:
                return self.find_adapter(reference.strip())
            except NotFoundError:
                pass
        ref = parse_reference(reference)
        return self.find_adapter(ref.name, version=ref.version, alias=ref.alias)

    def reading(self) -> AbstractContextManager[Any]:
        """Group several reads into one consistent view, where the implementation can."""
        return nullcontext()

    def now(self) -> datetime:
        """Now on the clock the store stamps its times with (team mode: the database server's), for durations and
        silences measured against those times."""
        from core.entities import utcnow

        return utcnow()

    # -- conveniences built on the primitives -------------------------------------------------
    def get_run(self, run_id: int) -> Run:
        return self.get_runs([run_id])[0]

    def get_run_metrics(self, run_id: int, keys: list[str] | None = None) -> RunMetrics:
        """Every point of a run per key, plus its summary."""
        from core.entities import RunMetrics

        run = self.get_run(run_id)
        series = self.get_metric_series([run.id], keys, max_points=None).drop("run_id")
        summary = {key: value for key, value in run.metrics.items() if keys is None or key in keys}
        return RunMetrics(run_id=run.id, series=series, summary=summary)

    def get_experiment_detail(self, experiment_id: int) -> ExperimentDetail:
        from core import compare
        from core.entities import ExperimentDetail

        with self.reading():
            experiment = self.get_experiment(experiment_id)
            runs = self.list_runs(experiment_id)
        return ExperimentDetail(
            experiment=experiment, runs=runs, aggregates=compare.aggregate_metrics(runs, experiment.metric_directions)
        )

    def compare_runs(self, run_ids: list[int]) -> RunComparison:
        from core import compare

        with self.reading():
            runs = self.get_runs(run_ids)
            overrides = {id_: self.get_experiment(id_).metric_directions for id_ in {run.experiment_id for run in runs}}
        return compare.compare_runs(runs, overrides)


# Primitives that change nothing: the store server may answer them again from its last answer until the next
# commit (core.read_cache), or for CURVE_READS until their runs' points change.
READS = frozenset(
    {
        "get_experiment",
        "list_experiments",
        "find_experiment",
        "get_runs",
        "list_runs",
        "runs_table",
        "list_active_runs",
        "get_metric_series",
        "get_adapter",
        "list_adapters",
        "read_log",
        "find_adapter",
        "list_adapter_aliases",
        "get_samples",
        "get_latest_samples",
        "list_sample_steps",
        "search_frame",
    }
)
# Reads whose answer depends on nothing but the points of the runs in their `run_ids`: the cache keeps such an
# answer while other runs' points change, so a finished experiment's curves stay served while others train.
CURVE_READS = frozenset({"get_metric_series"})
# Primitives that may be sent twice with the same effect as once: reads, and writes that replace what they write.
REPEATABLE = READS | frozenset(
    {
        "verify_integrity",  # a read, but answered fresh every time: it checks the store itself
        "set_adapter_alias",
        "heartbeat",
        "log_metrics",
        "log_samples",
        "set_tags",
        "remove_tags",
        "set_note",
    }
)


def operations() -> frozenset[str]:
    """The primitives: what a store's owner answers for other processes, each as one request."""
    return frozenset(name for name in TrackingStore.__abstractmethods__ if callable(getattr(TrackingStore, name)))


def return_type(operation: str) -> Any:
    """What a primitive answers, as a type (the contract's annotations are text until asked for)."""
    from core import entities, filters, sample_rows

    names = {**vars(entities), **vars(filters), **vars(sample_rows)}
    return get_type_hints(getattr(TrackingStore, operation), localns=names)["return"]
