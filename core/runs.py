"""Starting a run: validate the config, store a queued run, hand it to the queue."""

from collections.abc import Callable
from typing import Any

from core.errors import TuneDeckError
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
    run_id = store.create_run(experiment_id, config.stored(), name=name)
    if enqueue is None:
        return run_id
    try:
        job_id = enqueue(run_id)
    except Exception as error:
        store.fail_run(run_id, f"could not queue the run: {error}")
        raise TuneDeckError(f"run {run_id} could not be queued: {error}") from error
    if job_id:
        store.set_job_id(run_id, str(job_id))
    return run_id
