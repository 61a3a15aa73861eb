"""Turn list filters into a WHERE clause and its bound parameters; sort keys come from an allow-list.

Runs are filtered on their metrics with `RunFilter`s such as "accuracy > 0.5", applied to the
runs table (one column per metric) as Polars expressions, so no user text reaches SQL.
"""

import math
import operator
import re
from collections.abc import Callable, Iterable
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict

from core.entities import MetricKey
from core.errors import ValidationError
from core.status import ExperimentStatus
from core.validation import friendly

EXPERIMENT_SORTS = {
    "created_at": "e.created_at",
    "updated_at": "e.updated_at",
    "name": "lower(e.name)",
    "status": "e.status",
    "run_count": "run_count",
    "id": "e.id",
}


def _statuses(status: ExperimentStatus | str | Iterable[ExperimentStatus | str]) -> list[str]:
    if not isinstance(status, Iterable) or isinstance(status, bytes | dict):  # a str is a status
        raise ValidationError(f"status must be a status or a list of them, got {type(status).__name__}")
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
    if name_contains is not None and not isinstance(name_contains, str):
        raise ValidationError(f"name_contains must be text, got {type(name_contains).__name__}")
    if name_contains and name_contains.strip():  # a pasted name's stray spaces are not part of what is looked for
        clauses.append("contains(lower(e.name), lower(?))")
        params.append(name_contains.strip())
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def experiment_order(sort: str, descending: bool) -> str:
    if not isinstance(sort, str) or sort not in EXPERIMENT_SORTS:
        raise ValidationError(f"cannot sort experiments by {sort!r}; use one of {', '.join(EXPERIMENT_SORTS)}")
    way = "DESC" if descending else "ASC"
    return f"ORDER BY {EXPERIMENT_SORTS[sort]} {way}, e.id {way}"


RUN_COLUMNS = ("id", "name", "status", "created_at", "ended_at", "adapter_id")
COMPARISONS: dict[str, Callable] = {
    ">=": operator.ge,
    "<=": operator.le,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}
_FILTER_TEXT = re.compile(r"^\s*(?P<key>.+?)\s*(?P<op>>=|<=|!=|>|<|==?)\s*(?P<value>\S+)\s*$")


class RunFilter(BaseModel):
    """Keep runs whose last value of `key` compares true with `value`; runs without the metric are dropped."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    key: MetricKey
    op: Literal[">", ">=", "<", "<=", "=", "!="]
    value: float

    @classmethod
    def parse(cls, text: "RunFilter | str") -> "RunFilter":
        """'accuracy > 0.5' -> RunFilter(key='accuracy', op='>', value=0.5)."""
        if isinstance(text, RunFilter):
            return text
        if isinstance(text, dict):  # a filter that crossed from another process
            return friendly(cls, text, "run filter")
        found = _FILTER_TEXT.match(text) if isinstance(text, str) else None
        if found is None:
            raise ValidationError(
                f"cannot read the filter {text!r}: write a metric, a comparison and a number, e.g. 'accuracy > 0.5'"
            )
        if any(symbol in found["key"] for symbol in "<>=!"):
            raise ValidationError(
                f"cannot read the filter {text!r}: write one comparison ({', '.join(COMPARISONS)}) between a metric and "
                "a number; for several conditions give several filters, which must all hold"
            )
        op = "=" if found["op"] == "==" else found["op"]
        try:
            value = float(found["value"])
        except ValueError:
            raise ValidationError(f"cannot read the filter {text!r}: {found['value']!r} is not a number") from None
        if not math.isfinite(value):
            raise ValidationError(f"cannot read the filter {text!r}: compare with a finite number, not {found['value']!r}")
        return friendly(cls, {"key": found["key"], "op": op, "value": value}, "run filter")

    def expression(self) -> pl.Expr:
        return COMPARISONS[self.op](pl.col(metric_column(self.key)), self.value)


def metric_column(key: str) -> str:
    """A metric's column in the runs table: its key, unless a run column has that name (a metric called 'status')."""
    return f"metric:{key}" if key in RUN_COLUMNS else key


def run_filters(filters: Iterable["RunFilter | str"], metric_keys: list[str]) -> pl.Expr | None:
    """One expression for all filters (they must all hold); a metric no run has logged is a clear error. One filter
    may come alone, as its text or a RunFilter."""
    if filters is None:
        filters = []
    if isinstance(filters, str | RunFilter | dict):
        filters = [filters]
    if not isinstance(filters, Iterable) or isinstance(filters, bytes):
        raise ValidationError(f"filters must be a list, e.g. ['accuracy > 0.5'], got {type(filters).__name__}")
    parsed = [RunFilter.parse(item) for item in filters]
    unknown = sorted({item.key for item in parsed} - set(metric_keys))
    if unknown:
        known = ", ".join(metric_keys) or "none yet"
        raise ValidationError(f"no run of this experiment logged {', '.join(map(repr, unknown))}; its metrics are: {known}")
    return pl.all_horizontal([item.expression() for item in parsed]) if parsed else None


def run_order(order_by: str | None, metric_keys: list[str]) -> str | None:
    """The column to sort by: a run column by its name, a metric by its key (or its `metric:` column name)."""
    if order_by is not None and not isinstance(order_by, str):
        raise ValidationError(f"order_by must be a metric's key or a run column's name, got {type(order_by).__name__}")
    if order_by is None or order_by in RUN_COLUMNS:
        return order_by
    columns = {metric_column(key) for key in metric_keys}
    if order_by in metric_keys or order_by in columns:
        return order_by if order_by in columns else metric_column(order_by)
    raise ValidationError(
        f"cannot sort runs by {order_by!r}; use a metric ({', '.join(metric_keys) or 'none yet'}) or one of {', '.join(RUN_COLUMNS)}"
    )
