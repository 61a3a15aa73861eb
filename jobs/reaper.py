"""Find runs that no worker will ever finish and fail them, so nothing stays queued or running forever."""

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from core.entities import Run, utcnow
from core.errors import InvalidTransitionError
from core.identity import is_local_and_dead
from core.settings import Settings
from core.status import RunStatus, is_silent
from core.store import TrackingStore

log = logging.getLogger("tunedeck.reaper")


def looks_lost(run: Run, settings: Settings, now: datetime) -> bool:
    """Whether this running run looks lost: its process on this machine is gone, or it has been silent past the
    heartbeat timeout at `now`, on the store's clock (`tunedeck doctor` warns of such runs when no worker runs to
    reap them). reap() itself spares silence while the store was out of reach: see its outage grace."""
    return run.status is RunStatus.RUNNING and (is_local_and_dead(run.worker) or is_silent(run, now, settings.heartbeat_timeout))


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


class Outages:
    """Whether this process could reach the store and the queue, and since when it can again. While they are out of
    reach (a database restarted, a network cut, the store's owner paused) no worker's heartbeat gets through either,
    so a run's silence counts only from `heartbeat_timeout` seconds after this process reached them again: an outage
    of a minute must not fail every healthy run the moment it ends. A process that has just started cannot tell
    whether they were out of reach a moment before (a worker restarted as the database came back, the app's "check
    now" after a restart), so silence counts from a timeout after its start too. Timed on `time.monotonic`, which
    no setting of the machine's clock moves."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._down = False
        self._back_at = clock()
        self._lock = threading.Lock()

    def failed(self) -> None:
        with self._lock:
            self._down = True

    def reached(self, waited: float, timeout: float) -> None:
        """They answered after `waited` seconds. A wait of a quarter of the heartbeat timeout or more counts as an
        outage too: a connection pool waits for a database server that is down, and answers once it is back."""
        with self._lock:
            if self._down or waited >= timeout / 4:
                self._down, self._back_at = False, self.clock()

    def silence_counts(self, timeout: float) -> bool:
        return self.judged_in(timeout) == 0

    def judged_in(self, timeout: float) -> float:
        """Seconds until silence counts (0: it does now)."""
        with self._lock:
            return timeout if self._down else max(0.0, timeout - (self.clock() - self._back_at))


_missing_jobs = MissingJobs()
_outages = Outages()


def silence_judged_in(timeout: float) -> float:
    """Seconds until this process's reaper judges runs' silence: what a person checking for lost runs by hand is told."""
    return _outages.judged_in(timeout)


def reap(
    store: TrackingStore,
    settings: Settings,
    live_job_ids: Callable[[], list[str]] | None = None,
    missing_jobs: MissingJobs = _missing_jobs,
    outages: Outages | None = None,
) -> list[int]:
    """Fail runs whose worker process on this machine has died, runs silent past the heartbeat timeout (counted from
    when this process last reached the store again, if it could not), and (given a look at the queue's live job IDs)
    queued runs whose job is gone, once they are older than the heartbeat timeout and two looks a heartbeat interval
    apart have missed their job."""
    outages = outages or _outages  # this process's, as silence_judged_in reads it
    asked = time.monotonic()
    try:
        live = None if live_job_ids is None else live_job_ids()
        active = store.list_active_runs()
    except Exception:
        outages.failed()
        raise
    outages.reached(time.monotonic() - asked, settings.heartbeat_timeout)
    lost = []
    for run in active:
        if run.status is RunStatus.RUNNING and is_local_and_dead(run.worker):
            try:
                store.fail_run(run.id, f"worker lost: the process that ran it, {run.worker}, is gone (killed or crashed)")
                lost.append(run.id)
            except InvalidTransitionError:
                pass  # it finished or was cancelled in the meantime
    if outages.silence_counts(settings.heartbeat_timeout):
        lost += store.fail_stale_runs(settings.heartbeat_timeout)
    if live is not None:
        queued = set(live)
        missing = {run.job_id for run in active if run.status is RunStatus.QUEUED and run.job_id and run.job_id not in queued}
        spared = missing - missing_jobs.still_missing(missing, settings.heartbeat_interval)  # maybe just taken
        orphans = store.fail_queued_without_job([*live, *sorted(spared)], settings.heartbeat_timeout)
        if orphans:
            log.error("failed queued runs %s: their jobs are no longer in the queue", orphans)
        lost += orphans
    return lost
