"""Find runs that no worker will ever finish and fail them, so nothing stays queued or running forever."""

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

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


class MissingJobs:
    """Queued runs' jobs that looks at the queue did not find, and when each was first missed. A worker takes a job
    off the queue a moment before it marks the run running, so a look can miss a job that is being started: a run is
    failed for a missing job only once looks at least `settle` seconds apart have both missed it."""

    def __init__(self, clock: Callable[[], datetime] = utcnow):
        self.clock = clock
        self._since: dict[str, datetime] = {}
        self._lock = threading.Lock()  # the worker's reaper thread and the queue's minutely reap task share it

    def still_missing(self, missing: set[str], settle: float) -> set[str]:
        """Of the jobs missed now, those missed since at least `settle` seconds ago."""
        now = self.clock()
        with self._lock:
            self._since = {job: self._since.get(job, now) for job in missing}
            return {job for job, since in self._since.items() if (now - since).total_seconds() >= settle}


_missing_jobs = MissingJobs()


def reap(
    store: TrackingStore, settings: Settings, live_job_ids: list[str] | None = None, missing_jobs: MissingJobs = _missing_jobs
) -> list[int]:
    """Fail runs whose worker process on this machine has died, runs silent past the heartbeat timeout, and (given
    the queue's live job IDs) queued runs whose job is gone, once they are older than the heartbeat timeout and two
    looks a heartbeat interval apart have missed their job."""
    lost = []
    active = store.list_active_runs()
    for run in active:
        if run.status is RunStatus.RUNNING and is_local_and_dead(run.worker):
            try:
                store.fail_run(run.id, f"worker lost: the process that ran it, {run.worker}, is gone (killed or crashed)")
                lost.append(run.id)
            except InvalidTransitionError:
                pass  # it finished or was cancelled in the meantime
    lost += store.fail_stale_runs(settings.heartbeat_timeout)
    if live_job_ids is not None:
        live = set(live_job_ids)
        missing = {run.job_id for run in active if run.status is RunStatus.QUEUED and run.job_id and run.job_id not in live}
        spared = missing - missing_jobs.still_missing(missing, settings.heartbeat_interval)  # maybe just taken
        orphans = store.fail_queued_without_job([*live_job_ids, *sorted(spared)], settings.heartbeat_timeout)
        if orphans:
            log.error("failed queued runs %s: their jobs are no longer in the queue", orphans)
        lost += orphans
    return lost
