"""Find runs that no worker will ever finish and fail them, so nothing stays queued or running forever."""

import logging
from datetime import timedelta

from core.entities import Run, utcnow
from core.errors import InvalidTransitionError
from core.identity import is_local_and_dead
from core.settings import Settings
from core.status import RunStatus
from core.store import TrackingStore

log = logging.getLogger("tunedeck.reaper")


def looks_lost(run: Run, settings: Settings) -> bool:
    """Whether reap() would fail this running run: its process on this machine is gone, or it has been silent past
    the heartbeat timeout (`tunedeck doctor` warns of such runs when no worker runs to reap them)."""
    silent = run.heartbeat_at is not None and utcnow() - run.heartbeat_at > timedelta(seconds=settings.heartbeat_timeout)
    return run.status is RunStatus.RUNNING and (is_local_and_dead(run.worker) or silent)


def reap(store: TrackingStore, settings: Settings, live_job_ids: list[str] | None = None) -> list[int]:
    """Fail runs whose worker process on this machine has died, runs silent past the heartbeat timeout, and (given
    the queue's live job IDs) queued runs whose job is gone, once they are older than the heartbeat timeout."""
    lost = []
    for run in store.list_active_runs():
        if run.status is RunStatus.RUNNING and is_local_and_dead(run.worker):
            try:
                store.fail_run(run.id, f"worker lost: the process that ran it, {run.worker}, is gone (killed or crashed)")
                lost.append(run.id)
            except InvalidTransitionError:
                pass  # it finished or was cancelled in the meantime
    lost += store.fail_stale_runs(settings.heartbeat_timeout)
    if live_job_ids is not None:
        orphans = store.fail_queued_without_job(live_job_ids, settings.heartbeat_timeout)
        if orphans:
            log.error("failed queued runs %s: their jobs are no longer in the queue", orphans)
        lost += orphans
    return lost
