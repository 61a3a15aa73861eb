"""Turn list filters into a WHERE clause and its bound parameters; sort keys come from an allow-list."""

from collections.abc import Iterable

from core.errors import ValidationError
from core.status import ExperimentStatus

EXPERIMENT_SORTS = {
    "created_at": "e.created_at",
    "updated_at": "e.updated_at",
    "name": "lower(e.name)",
    "status": "e.status",
    "run_count": "run_count",
    "id": "e.id",
}


def _statuses(status: ExperimentStatus | str | Iterable[ExperimentStatus | str]) -> list[str]:
    items = [status] if isinstance(status, str) else list(status)
    try:
        return [ExperimentStatus(item).value for item in items]
    except ValueError:
        allowed = ", ".join(s.value for s in ExperimentStatus)
        raise ValidationError(f"unknown status in {items!r}; use one of {allowed}") from None


def experiment_where(
    status: ExperimentStatus | str | Iterable[ExperimentStatus | str] | None,
    name_contains: str | None,
    include_deleted: bool,
) -> tuple[str, list]:
    clauses: list[str] = []
    params: list = []
    if not include_deleted:
        clauses.append("e.deleted_at IS NULL")
    if status is not None:
        clauses.append("list_contains(?, e.status)")
        params.append(_statuses(status))
    if name_contains:
        clauses.append("contains(lower(e.name), lower(?))")
        params.append(name_contains)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def experiment_order(sort: str, descending: bool) -> str:
    if sort not in EXPERIMENT_SORTS:
        raise ValidationError(f"cannot sort experiments by {sort!r}; use one of {', '.join(EXPERIMENT_SORTS)}")
    way = "DESC" if descending else "ASC"
    return f"ORDER BY {EXPERIMENT_SORTS[sort]} {way}, e.id {way}"
