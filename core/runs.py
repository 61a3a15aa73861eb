"""Starting a run: validate the config, store a queued run, hand it to the queue."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.artifacts import checkpoints_of, last_checkpoint
from core.entities import Adapter, Run
from core.errors import NotFoundError, TuneDeckError, ValidationError
from core.status import RunStatus
from core.store import TrackingStore
from core.training_config import TrainingConfig
from core.validation import friendly

Enqueue = Callable[[int], str | None]


def parse_config(config: TrainingConfig | dict[str, Any]) -> TrainingConfig:
    """A TrainingConfig, or ValidationError with one message per bad field."""
    return friendly(TrainingConfig, config, "training config")


def start_run(
    store: TrackingStore,
    experiment_id: int,
    config: TrainingConfig | dict[str, Any],
    enqueue: Enqueue | None = None,
    name: str | None = None,
) -> int:
    """Create a queued run and give its ID to enqueue, which may return the queue's job ID.

    If enqueueing fails the run is marked failed, so no run waits forever for a job that does not exist.
    """
    config = parse_config(config)
    if config.resume_from_run is not None:
        _check_resumable(store, experiment_id, config.resume_from_run)
    run_id = store.create_run(experiment_id, config.stored(), name=name)
    if enqueue is not None:
        _enqueue(store, run_id, enqueue)
    return run_id


def _enqueue(store: TrackingStore, run_id: int, enqueue: Enqueue) -> None:
    try:
        job_id = enqueue(run_id)
    except Exception as error:
        store.fail_run(run_id, f"could not queue the run: {error}")
        raise TuneDeckError(f"run {run_id} could not be queued: {error}") from error
    if job_id:
        store.set_job_id(run_id, str(job_id))


def start_runs(
    store: TrackingStore, experiment_id: int, configs: list[TrainingConfig], enqueue: Enqueue | None = None
) -> list[int]:
    """A sweep's runs, stored together in one transaction, then each queued (a run that cannot be is failed)."""
    for config in configs:
        if config.resume_from_run is not None:
            _check_resumable(store, experiment_id, config.resume_from_run)
    run_ids = store.create_runs(experiment_id, [config.stored() for config in configs])
    failures = []
    for run_id in run_ids if enqueue is not None else ():
        try:
            _enqueue(store, run_id, enqueue)
        except TuneDeckError as error:
            failures.append(str(error))  # the others still go on the queue
    if failures:
        raise TuneDeckError(f"{len(failures)} of {len(run_ids)} runs could not be queued: {failures[0]}")
    return run_ids


def clone_config(run: Run) -> dict[str, Any]:
    """The settings a new run would copy from `run` ("Clone"): what its trainer read, without a resume link."""
    return {key: value for key, value in run.config.items() if key in TrainingConfig.model_fields and key != "resume_from_run"}


def resume_config(run: Run) -> dict[str, Any]:
    """A new run's config that continues `run` from its last checkpoint: the same settings, linked by resume_from_run.

    Params the trainer logged into the old config (parameter counts, say) are left out.
    """
    settings = {key: value for key, value in run.config.items() if key in TrainingConfig.model_fields}
    return {**settings, "resume_from_run": run.id}


def _check_resumable(store: TrackingStore, experiment_id: int, run_id: int) -> None:
    earlier = store.get_run(run_id)
    if earlier.experiment_id != experiment_id:
        raise ValidationError(
            f"resume_from_run: run {run_id} belongs to another experiment; resume it there",
            {"resume_from_run": "belongs to another experiment"},
        )
    if not earlier.status.is_terminal:  # its trainer is still writing the checkpoints a resume would read
        raise ValidationError(
            f"resume_from_run: run {run_id} is still {earlier.status}; resume it once it has ended",
            {"resume_from_run": f"is still {earlier.status}; resume it once it has ended"},
        )


def offers_resume(run: Run, checkpoints_dir: Path) -> bool:
    """A run that stopped short (failed or cancelled) and left a checkpoint here: its page offers to resume it.
    A completed run can be resumed too, to train it further, from Python with `max_steps` raised (README)."""
    return run.status in (RunStatus.FAILED, RunStatus.CANCELLED) and last_checkpoint(checkpoints_of(checkpoints_dir, run.id)) is not None


def found_and_missing(store: TrackingStore, run_ids: list[int]) -> tuple[list[int], list[int]]:
    """The IDs of runs that exist, in the order given, and those that do not (a compare link with a mistyped or
    deleted run still compares the others)."""
    if not run_ids:
        return [], []
    try:
        store.get_runs(run_ids)
        return list(run_ids), []
    except NotFoundError:
        pass
    found, missing = [], []
    for run_id in run_ids:
        try:
            store.get_run(run_id)
            found.append(run_id)
        except NotFoundError:
            missing.append(run_id)
    return found, missing


def adapters_of(store: TrackingStore, runs: list[Run]) -> dict[int, Adapter]:
    """The adapters these runs trained, by run ID: one request per experiment, not one per run."""
    wanted = {run.adapter.id: run.id for run in runs if run.adapter}
    experiments = sorted({run.experiment_id for run in runs if run.adapter})
    found = {adapter.id: adapter for experiment_id in experiments for adapter in store.list_adapters(experiment_id)}
    return {run_id: found[adapter_id] for adapter_id, run_id in wanted.items() if adapter_id in found}
