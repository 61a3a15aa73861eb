"""The tracking SDK: log a training script's metrics, params, outcome and adapter to TuneDeck.

    from core import tracking

    with tracking.start_run("sentiment", params={"learning_rate": 3e-4}) as run:
        for step in range(1, 101):
            run.log({"loss": ...}, step=step)       # MLflow / W&B order; run.log(step, {...}) works too
        run.log_adapter("out/adapter", base_model="gpt2")
        run.log_file("eval_report.json")

With TUNEDECK_MODE=disabled every call is a no-op and nothing is stored: for a user's own tests and CI.

Inside a job started by a TuneDeck worker, `tracking.attach()` (or `start_run` with no
experiment) picks up the worker's run from TUNEDECK_RUN_ID; the worker then owns the run's
status and registers the adapter when the script exits 0. Every call is safe while the
dashboard and other workers use the store: each call is one operation on the shared store.
"""

import json
import logging
import numbers
import os
import shutil
import threading
import traceback as tb
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core import open_store
from core.artifacts import adapter_of, describe_adapter, keep, keep_file, publish_adapter, refuse_holding
from core.dataset_labels import SCRIPT_DATASET
from core.entities import Adapter, AdapterSpec
from core.errors import InvalidTransitionError, NotFoundError, OwnerLostError, TuneDeckError, ValidationError, failure_text
from core.identity import worker_id
from core.points import check_step
from core.retry import until_back
from core.sample_rows import SampleRow, checked_samples
from core.settings import Settings, get_settings
from core.status import RunStatus
from core.store import TrackingStore
from core.ticker import heartbeats
from core.writer import MetricWriter

log = logging.getLogger("tunedeck.tracking")
RUN_ID_VARIABLE = "TUNEDECK_RUN_ID"
ADAPTER_LINE = "tunedeck"  # the key that marks a JSON line on stdout as ours


class ActiveRun:
    """A run this process logs to. Use as a context manager so the tail of the metrics is flushed."""

    def __init__(
        self,
        store: TrackingStore,
        run_id: int,
        *,
        attached: bool,
        heartbeat_seconds: float | None = None,
        ended: bool = False,
        joined: bool = False,
        settings: Settings | None = None,
    ):
        self.store = store
        self.id = run_id
        self.attached = attached
        # joined: attach(id) of a run another process is running; it logs here, and that process ends the run
        self.joined = joined
        self._ended = ended  # finished here, or attached to a run that had ended: its results are final
        fsync = (settings or get_settings()).journal_fsync
        self.writer = MetricWriter(store, flush_seconds=1.0, fsync=fsync)
        self.cancelled = threading.Event()
        self._adapter: tuple[Path, str, str | None] | None = None
        self._last_step: int | None = None
        self._stepping = threading.Lock()  # threads logging without a step each get a step of their own
        self._heartbeat = heartbeats.every(heartbeat_seconds, self._beat) if heartbeat_seconds else None

    @property
    def should_stop(self) -> bool:
        """True once the run was cancelled from the dashboard: stop training at the next step."""
        return self.cancelled.is_set()

    def log(self, values: Mapping[str, float] | int, step: int | Mapping[str, float] | None = None) -> None:
        """run.log({"loss": 0.7}, step=10) as in MLflow and W&B (no step: the one after the last logged here),
        or run.log(10, {"loss": 0.7}), the older order, kept working."""
        if not isinstance(values, Mapping):
            values, step = step, values
        if not isinstance(values, Mapping):
            raise ValidationError("log() takes the metrics as a dict, e.g. run.log({'loss': 0.7}, step=10)")
        self._still_open()
        with self._stepping:
            if step is None:
                step = 0 if self._last_step is None else self._last_step + 1
            self.writer.log(self.id, step, values)
            if isinstance(step, numbers.Integral) and not isinstance(step, bool) and (self._last_step is None or step > self._last_step):
                self._last_step = int(step)  # a NumPy int too: the next step without one follows it

    def log_params(self, params: dict[str, Any]) -> None:
        self._still_open()
        self.store.log_params(self.id, params)

    def flush(self) -> None:
        """Store the points logged so far now, rather than within the writer's next second."""
        self.writer.flush()

    def log_samples(self, rows: list[dict[str, Any] | SampleRow], step: int) -> int:
        """What the model answered on eval examples at `step`: dicts with example_id, input, reference,
        prediction, and optionally score, correct and extra (confidence, decoding settings). Sent at once."""
        self._still_open()
        return self.store.log_samples(self.id, check_step(step), checked_samples(rows))

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Add or replace the run's tags ({"base": "llama", "seed": 3}: values are kept as text), as in MLflow and W&B."""
        self.store.set_tags("run", self.id, tags)

    def register_adapter(self, path: str | Path, base_model: str = "unknown", name: str | None = None) -> None:
        """Name the folder holding the trained adapter; it is registered when the run completes."""
        folder = Path(path).resolve()
        if folder.is_file():
            raise ValidationError(f"{folder} is a file: name the folder the adapter was saved in (save_pretrained's folder)")
        if not folder.is_dir():
            raise ValidationError(f"adapter folder {folder} does not exist")
        refuse_holding(folder, adapter_of(self.store.data_dir / "adapters", self.id))  # a folder holding it: the data folder, say
        if self.joined:
            raise ValidationError(f"run {self.id} is running in another process: the process that started it registers its adapter")
        if self.attached:
            print(json.dumps({ADAPTER_LINE: "adapter", "path": str(folder), "base_model": base_model}), flush=True)
            return
        self._adapter = (folder, base_model, name)  # copied into the data dir only when the run completes

    log_adapter = register_adapter  # the name MLflow users reach for

    def log_file(self, path: str | Path) -> Path:
        """Keep a copy of a file (an eval report, a config) with the run; the run page offers it for download."""
        return keep_file(Path(path), self.store.data_dir, self.id, get_settings().artifact_root)

    def finish(
        self, status: RunStatus | str = RunStatus.COMPLETED, error: str | None = None, traceback: str | None = None
    ) -> Adapter | None:
        """Store the last metrics and the outcome in one operation (a worker-owned run only flushes: the worker decides).

        If the outcome cannot be recorded (the run was failed as lost meanwhile, say), the metrics are still stored.
        """
        if self._ended:  # finished already, or attached to a run that had ended: there is nothing more to record
            self._stop_heartbeat()
            self.writer.close()
            return None
        if not (self.attached or self.joined):
            try:
                outcome = RunStatus(status)
            except ValueError:
                outcome = None
            if outcome is None or not outcome.is_terminal:  # the run stays open: finish() may be called again
                raise ValidationError(f"finish() takes completed, failed or cancelled, not {str(status)[:50]}")
            status = outcome
        self._ended = True
        if self.attached or self.joined:  # the worker, or the process that runs it, decides how the run ends
            self._stop_heartbeat()
            until_back(self.writer.close)
            return None
        try:
            return self._record_end(status, error, traceback)
        finally:  # it beats until then: a wait for a store out of reach must not look like a lost run to the reapers
            self._stop_heartbeat()

    def _record_end(self, status: RunStatus, error: str | None, traceback: str | None) -> Adapter | None:
        completing = status is RunStatus.COMPLETED and not self.cancelled.is_set()
        try:
            adapter = self._kept_adapter() if completing else None
        except (TuneDeckError, OSError) as failed:  # a copy that failed (a full disk): the run fails saying so
            reason = f"the adapter could not be kept: {failed}"
            try:
                self.writer.close_with(lambda points: self.store.end_run(self.id, RunStatus.FAILED, points=points, error=reason))
            except (InvalidTransitionError, NotFoundError):  # ended elsewhere meanwhile: the copy's error is the one to see
                self.writer.close()
            raise

        def end(points) -> Adapter | None:
            return self.store.end_run(self.id, status, points=points, adapter=adapter, error=error, traceback=traceback)

        try:
            # A store out of reach (its owner killed mid-request, a database restarting) is waited for: the run is done.
            return until_back(lambda: self.writer.close_with(end))
        except (InvalidTransitionError, NotFoundError):
            until_back(self.writer.close)  # the points are stored whatever became of the run
            now = self._status_now()
            if now is status:
                return None  # the first try had been recorded (its adapter too) before the owner stopped
            self._discard_copy(adapter)  # no adapter was registered for the run, so none is kept
            if now is RunStatus.CANCELLED:
                self.cancelled.set()  # cancelled from the dashboard meanwhile: the script stops quietly, as after a beat
                return None
            raise

    def _status_now(self) -> RunStatus | None:
        try:
            return self.store.get_run(self.id).status
        except TuneDeckError:
            return None

    def _still_open(self) -> None:
        """Metrics, params and samples of an ended run are final: its summaries and its experiment's best metrics were
        settled when it ended. (Tags, notes and files may still be added.)"""
        if self._ended:
            raise InvalidTransitionError(f"run {self.id} has ended: its results are final; start a new run to log more")

    def _kept_adapter(self) -> AdapterSpec | None:
        if self._adapter is None:
            return None
        folder, base_model, name = self._adapter
        kept = keep(folder, adapter_of(self.store.data_dir / "adapters", self.id))
        settings = get_settings()
        if settings.artifact_root is not None:  # team mode: where every machine's app finds it
            return publish_adapter(settings, kept, self.id, base_model, name)
        return describe_adapter(kept, base_model, name)

    def _discard_copy(self, adapter: AdapterSpec | None) -> None:
        if adapter is not None and self._adapter is not None and Path(adapter.path) != self._adapter[0]:
            shutil.rmtree(adapter.path, ignore_errors=True)

    def _beat(self) -> None:
        try:
            if self.store.heartbeat(self.id).is_terminal:
                self.cancelled.set()
        except TuneDeckError:
            pass  # a busy store delays one heartbeat; the timeout allows for many

    def _stop_heartbeat(self) -> None:
        heartbeats.cancel(self._heartbeat)

    def __enter__(self) -> "ActiveRun":
        return self

    def __exit__(self, kind, error, trace) -> None:
        if self.joined:  # leaving the block stores what was logged here; the run's own process ends it
            self.finish()
            return
        if self.cancelled.is_set() and not self.attached:
            self._stop_heartbeat()
            self._ended = True
            self.writer.close()
            return
        if error is None or (isinstance(error, SystemExit) and error.code in (0, None)):  # sys.exit(0): a success
            self.finish(RunStatus.COMPLETED)
            return
        try:
            self.finish(RunStatus.FAILED, failure_text(error), "".join(tb.format_exception(kind, error, trace)))
        except (InvalidTransitionError, NotFoundError) as refused:  # ended elsewhere (reaped): the script's own error
            log.warning("run %s: %s", self.id, refused)  # is the one to see, so it is not replaced by this one


class DisabledRun:
    """What start_run() gives under TUNEDECK_MODE=disabled: every call a real run takes is accepted and stores nothing,
    no store is opened; a misspelt call still fails, as it would in online mode."""

    id = None
    attached = False
    should_stop = False

    def __getattr__(self, name: str):
        if name.startswith("_") or not callable(getattr(ActiveRun, name, None)):
            raise AttributeError(f"a run has no {name!r}")
        return _nothing

    def __enter__(self) -> "DisabledRun":
        return self

    def __exit__(self, kind, error, trace) -> None:
        return None


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


def _disabled(settings: Settings | None = None) -> bool:
    return (settings or get_settings()).mode == "disabled"


def attach(run_id: int | None = None, store: TrackingStore | None = None) -> ActiveRun | DisabledRun:
    """The run a TuneDeck worker started this process for (TUNEDECK_RUN_ID), or the run_id given. A run_id that is
    queued or running for another process is joined: what is logged here is stored, and that process ends the run."""
    if _disabled():
        return DisabledRun()
    raw = run_id if run_id is not None else os.environ.get(RUN_ID_VARIABLE)
    if raw is None:
        raise ValidationError(f"no run to attach to: {RUN_ID_VARIABLE} is not set; use start_run(experiment) outside a worker")
    if not (str(raw).isascii() and str(raw).isdigit()):  # not "²" or "١", which isdigit() takes
        raise ValidationError(f"run ID to attach to must be a positive whole number, got {str(raw)[:50]!r}")
    store = store or open_store()
    run = store.get_run(int(raw))
    worker_owned = run_id is None or str(run_id) == os.environ.get(RUN_ID_VARIABLE)  # its own run, named by its ID
    joined = not worker_owned and not run.status.is_terminal  # queued or running for another process: that one ends it
    return ActiveRun(store, run.id, attached=worker_owned, joined=joined, ended=run.status.is_terminal and not worker_owned)


def resolve_adapter(reference: str, store: TrackingStore | None = None) -> Adapter:
    """The adapter a reference names: 'sentiment@production' (an alias), 'sentiment@3' (a version) or 'sentiment'
    (its latest version). Its `path` is the folder to load with `PeftModel.from_pretrained(base, path)`."""
    return (store or open_store()).resolve_adapter(reference)


def start_run(
    experiment: str | int | None = None,
    *,
    params: dict[str, Any] | None = None,
    name: str | None = None,
    dataset: str = SCRIPT_DATASET,
    store: TrackingStore | None = None,
) -> ActiveRun | DisabledRun:
    """Attach to the worker's run, or create a running run in an experiment (by ID, or by name: created if new)."""
    settings = get_settings()  # once: reading the environment is most of what a short run costs this process
    if _disabled(settings):
        return DisabledRun()
    if experiment is None:
        active = attach(store=store)
        if params:
            active.log_params(params)
        return active
    store = store or open_store(settings=settings)
    if isinstance(experiment, str):
        experiment = experiment.strip()
    run_id = _begin(store, experiment, params or {}, name, dataset)
    return ActiveRun(store, run_id, attached=False, heartbeat_seconds=settings.heartbeat_interval, settings=settings)


_started: set[tuple[str, int]] = set()  # (store, run ID) of the runs this process was told it started
_starting = threading.Lock()  # one start at a time in a process: a lost answer's run is then told apart from the others'


def _begin(store: TrackingStore, experiment: str | int, params: dict[str, Any], name: str | None, dataset: str) -> int:
    """begin_run; when the store's owner stopped mid-request, the run it recorded before stopping (a running run of
    this process that it was never told of), else a start asked of the next owner: one run either way."""
    me, which = worker_id(), store.location
    with _starting:
        try:
            run_id = store.begin_run(experiment, params, worker=me, name=name, dataset=dataset)
        except OwnerLostError:
            recorded = [
                run.id
                for run in store.list_active_runs()
                if run.worker == me and run.status is RunStatus.RUNNING and (which, run.id) not in _started
            ]
            run_id = max(recorded) if recorded else store.begin_run(experiment, params, worker=me, name=name, dataset=dataset)
        _started.add((which, run_id))
        return run_id
