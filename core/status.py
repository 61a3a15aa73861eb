"""The run lifecycle and the experiment status that follows from its runs."""

from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @property
    def is_active(self) -> bool:
        return self in ACTIVE


class ExperimentStatus(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_active(self) -> bool:
        """Running: some run of it is queued or running (experiment_status)."""
        return self is ExperimentStatus.RUNNING


TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})
ACTIVE = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
ENDED_VALUES = sorted(status.value for status in TERMINAL)  # as a SQL list parameter takes them

ALLOWED_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.RUNNING: TERMINAL,
    RunStatus.COMPLETED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}


def any_active(items: Iterable) -> bool:
    """Whether any of these runs or experiments is still queued or running: what keeps a page refreshing itself."""
    return any(item.status.is_active for item in items)


def is_silent(run, now: datetime, seconds: float | None) -> bool:
    """A running run whose last heartbeat is older than `seconds` at `now`: its worker is likely gone. The one notion
    of a silent run: the Jobs page, `tunedeck doctor` and the reaper (`fail_stale_runs` is its set form in SQL)."""
    return (
        seconds is not None
        and run.status == RunStatus.RUNNING
        and run.heartbeat_at is not None
        and now - run.heartbeat_at > timedelta(seconds=seconds)
    )


def can_transition(current: RunStatus, new: RunStatus) -> bool:
    return new in ALLOWED_TRANSITIONS[current]


def experiment_status(run_counts: dict[RunStatus, int]) -> ExperimentStatus:
    """Derive an experiment's status from how many of its runs are in each state."""
    counts = {status: n for status, n in run_counts.items() if n}
    if not counts:
        return ExperimentStatus.CREATED
    if any(status in ACTIVE for status in counts):
        return ExperimentStatus.RUNNING
    if RunStatus.COMPLETED in counts:
        return ExperimentStatus.COMPLETED
    if RunStatus.FAILED in counts:
        return ExperimentStatus.FAILED
    return ExperimentStatus.CANCELLED
