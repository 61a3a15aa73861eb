"""The queue's tasks, and the calls that put runs on it or take them off.

Tasks take run IDs only; everything else is read from the store when the job runs.
"""

import logging

from huey import crontab

from core import open_store
from core.dataset_labels import is_label
from core.datasets import gone
from core.errors import NotFoundError, TuneDeckError, ValidationError
from core.runs import parse_config
from core.runs import start_run as create_and_enqueue
from core.runs import start_runs as create_and_enqueue_all
from core.settings import get_settings
from core.status import RunStatus
from core.store import TrackingStore
from core.training_config import TrainingConfig
from jobs.config import huey, ready_queue
from jobs.embedded import ensure_worker
from jobs.reaper import reap
from jobs.supervisor import SHUTTING_DOWN, supervise
from jobs.trainers import SHIPPED, check_base_model, command

log = logging.getLogger("tunedeck.tasks")


@huey.task()
def train_run(run_id: int) -> str:
    settings = get_settings()
    if SHUTTING_DOWN.is_set():  # taken from the queue as this worker stops: queued again, for the next worker
        open_store().set_job_id(run_id, enqueue(run_id))
        return RunStatus.QUEUED.value
    try:
        return supervise(open_store(), run_id, settings).value
    except NotFoundError:
        log.error(
            "job for run %s dropped: the store at %s has no such run (is this worker on another data folder "
            "than the app that queued it? set TUNEDECK_DATA_DIR alike)",
            run_id,
            settings.store_path.resolve(),
        )
        raise


@huey.periodic_task(crontab(minute="*"))
def reap_lost_runs() -> list[int]:
    """Also runs under a plain `huey_consumer`, which has no reaper thread of its own."""
    return reap(open_store(), get_settings(), live_job_ids)


def live_job_ids() -> list[str]:
    """The jobs still waiting in the queue, scheduled or not: a queued run whose job is not among them never runs."""
    return [task.id for task in _waiting()]


def training_waits() -> bool:
    """Whether a training job waits in the queue. The reaper's task, queued each minute, is not work to stay up for:
    counting it kept an idle auto-started worker alive for good."""
    return any(is_training(task) for task in _waiting())


def is_training(task) -> bool:
    return isinstance(task, train_run.task_class)


def _waiting() -> list:
    queue = ready_queue()
    return [*queue.pending(), *queue.scheduled()]


def enqueue(run_id: int) -> str:
    ready_queue()
    return train_run(run_id).id


def start_run(store: TrackingStore, experiment_id: int, config: TrainingConfig | dict, name: str | None = None) -> int:
    """Create a run, queue it, and make sure a worker will pick it up; returns the run ID."""
    config = parse_config(config)
    _check_here(store, experiment_id, [config])
    run_id = create_and_enqueue(store, experiment_id, config, enqueue=enqueue, name=name)
    _worker_for_the_queue()
    return run_id


def start_sweep(store: TrackingStore, experiment_id: int, configs: list[TrainingConfig]) -> list[int]:
    """A sweep's runs, stored together and queued, with a worker to pick them up; returns their IDs."""
    configs = [parse_config(config) for config in configs]
    _check_here(store, experiment_id, configs)
    run_ids = create_and_enqueue_all(store, experiment_id, configs, enqueue=enqueue)
    _worker_for_the_queue()
    return run_ids


def _check_here(store: TrackingStore, experiment_id: int, configs: list[TrainingConfig]) -> None:
    """What this machine's workers would refuse is said now, not after the runs were queued: a command not
    registered, a base model not there, no dataset file or one gone (a shipped trainer's: a command's dataset may be
    a folder or anything its script reads; a relative path is left to the workers, read from their folder)."""
    for config in configs:
        command.check(config)
        check_base_model(config)
    trainers = sorted({config.trainer for config in configs if config.trainer in SHIPPED})
    if not trainers:
        return
    dataset = store.get_experiment(experiment_id).dataset
    if is_label(dataset):
        raise ValidationError(
            f"this experiment has no dataset file to train on (its dataset is {dataset}): the {' and '.join(trainers)} "
            f"{'trainer reads' if len(trainers) == 1 else 'trainers read'} one; make an experiment on a dataset file, "
            "or start a registered command here, which reads its own data"
        )
    if get_settings().team_mode:
        return
    if gone(dataset):
        raise ValidationError(f"the experiment's dataset file {dataset} is not there; put it there, or make a new experiment")


def _worker_for_the_queue() -> None:
    """The runs are queued whatever happens here: a worker that cannot start is said, not raised as if they were not."""
    try:
        ensure_worker(get_settings())
    except TuneDeckError as error:
        log.warning("%s", error)


def cancel_run(store: TrackingStore, run_id: int) -> RunStatus:
    """Cancel a run: a queued job is revoked, a running one stops at its next heartbeat. Returns the status it had,
    for the page to say which (a page's own read may be seconds old)."""
    run = store.get_run(run_id)
    store.cancel_run(run_id)
    if run.status is RunStatus.QUEUED and run.job_id:
        ready_queue().revoke_by_id(run.job_id)
    return run.status
