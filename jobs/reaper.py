"""Find runs whose worker is gone and fail them, so nothing stays 'running' forever."""

from datetime import timedelta

from core.errors import InvalidTransitionError
from core.identity import is_local_and_dead
from core.settings import Settings
from core.status import RunStatus
from core.store import TrackingStore


def reap(store: TrackingStore, settings: Settings) -> list[int]:
    """Fail runs whose worker process on this machine has died, and runs silent past the heartbeat timeout."""
    lost = []
    for run in store.list_active_runs():
        if run.status is RunStatus.RUNNING and is_local_and_dead(run.worker):
            try:
                store.fail_run(run.id, f"worker lost: process {run.worker} is gone (killed or crashed)")
                lost.append(run.id)
            except InvalidTransitionError:
                pass  # it finished or was cancelled in the meantime
    lost += store.fail_stale_runs(timedelta(seconds=settings.heartbeat_timeout))
    return lost
