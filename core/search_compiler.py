"""Compile a search tree into one Polars expression over the runs' search frame (see core.search_frame).

A field names a column of the frame; a value is checked against that column's type here, so a
query that cannot mean anything fails with the token at fault instead of matching nothing.
A comparison on a value a run lacks (a param it never had) is false, so `not` includes that run.
"""

import difflib
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

import polars as pl

from core.search import DATE, BoolOp, Comparison, Node, Not, SearchError, Token, parse, read_date
from core.search_frame import BUILTIN_FIELDS, METRIC_PARTS, OWN_TAGS
from core.status import RunStatus

COMPARE: dict[str, Callable] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
STATUSES = tuple(status.value for status in RunStatus)
NAMESPACES = {"metrics": "metric", "params": "param", "tags": "tag"}


@dataclass(frozen=True)
class CompiledSearch:
    expression: pl.Expr | None  # None: every run matches
    columns: tuple[str, ...]  # the frame's columns the query names, in the order it names them

    def apply(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame if self.expression is None else frame.filter(self.expression)


def compile_search(text: str, schema: pl.Schema | dict[str, pl.DataType]) -> CompiledSearch:
    tree = parse(text)
    if tree is None:
        return CompiledSearch(None, ())
    used: dict[str, None] = {}
    return CompiledSearch(_Compiler(dict(schema), used).node(tree), tuple(used))


def search(frame: pl.DataFrame, text: str) -> pl.DataFrame:
    """The rows of a search frame that the query matches, in the frame's order."""
    return compile_search(text, frame.schema).apply(frame)


NOT_FIELDS = ("experiment_id", OWN_TAGS)  # columns of the frame for pages, not for a person to search by


def fields(schema: pl.Schema | dict[str, pl.DataType]) -> list[str]:
    """What a user may type as a field: the frame's columns, with `metrics.<key>` standing for its last value."""
    names = [name for name in schema if not name.startswith("metrics.")]
    metrics = [name.removesuffix(".last") for name in schema if name.startswith("metrics.") and name.endswith(".last")]
    names += metrics + [f"{name}.{part}" for name in metrics for part in METRIC_PARTS]
    return [name for name in names if name not in NOT_FIELDS]


class _Compiler:
    def __init__(self, schema: dict[str, pl.DataType], used: dict[str, None]):
        self.schema = schema
        self.used = used

    def node(self, node: Node) -> pl.Expr:
        if isinstance(node, BoolOp):
            parts = [self.node(operand) for operand in node.operands]
            return pl.all_horizontal(parts) if node.op == "and" else pl.any_horizontal(parts)
        if isinstance(node, Not):
            return ~self.node(node.operand)
        return self.comparison(node).fill_null(False)

    def comparison(self, node: Comparison) -> pl.Expr:
        column = self.column(node.field)
        self.used[column] = None
        dtype = self.schema[column]
        shown = node.field.value
        if node.op == "contains":
            if dtype != pl.String:
                raise _at(node.values[0], "`contains` needs text", f"`{shown}` holds {_kind(dtype)}; use = < > instead")
            needle = self.text(node.values[0], column)
            return pl.col(column).str.to_lowercase().str.contains(needle.lower(), literal=True)
        if node.op in ("in", "not in"):
            matches = pl.any_horizontal([self.compare(column, dtype, "=", value) for value in node.values])
            return ~matches.fill_null(False) if node.op == "not in" else matches
        return self.compare(column, dtype, node.op, node.values[0])

    def compare(self, column: str, dtype: pl.DataType, op: str, value: Token) -> pl.Expr:
        col = pl.col(column)
        if dtype.is_numeric():
            return COMPARE[op](col, self.number(value, column))
        if dtype == pl.Boolean:
            if op not in ("=", "!="):
                raise _at(value, f"`{op}` cannot order true and false", f"compare `{column}` with = or !=")
            return COMPARE[op](col, self.boolean(value, column))
        if dtype.is_temporal():
            moment = self.moment(value, column)
            return COMPARE[op](col.dt.date() if type(moment) is date else col, moment)
        if value.kind in ("number", "duration"):  # text that holds numbers: a tag "3", a param logged as "1e-3"
            return COMPARE[op](col.cast(pl.Float64, strict=False), value.value)
        return COMPARE[op](col, self.text(value, column))

    def column(self, field: Token) -> str:
        name = _normalized(field.value)
        if name in self.schema and not name.startswith("metrics.") and name not in NOT_FIELDS:
            return name
        if name.startswith("metrics."):
            for candidate in (f"{name}.last", name):
                if candidate in self.schema and candidate.rsplit(".", 1)[-1] in METRIC_PARTS:
                    return candidate
        raise _at(field, f"unknown field `{name}`", self.suggestion(name))

    def suggestion(self, name: str) -> str:
        known = fields(self.schema)
        for prefix in NAMESPACES:
            if f"{prefix}.{name}" in known:
                return f"did you mean `{prefix}.{name}`?"
        prefix, dot, rest = name.partition(".")
        if dot and prefix in NAMESPACES:  # a known kind of field: look among its own names only
            members = [field.removeprefix(f"{prefix}.") for field in known if field.startswith(f"{prefix}.")]
            close = difflib.get_close_matches(rest, members, n=1, cutoff=0.6)
            if close:
                return f"did you mean `{prefix}.{close[0]}`?"
            listed = [member for member in members if not member.endswith(tuple(f".{part}" for part in METRIC_PARTS))]
            if not listed:
                return f"no run here has any {NAMESPACES[prefix]}s"
            more = f" and {len(listed) - 12} more" if len(listed) > 12 else ""
            return f"no run here has it; its {NAMESPACES[prefix]}s are {', '.join(listed[:12])}{more}"
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        if close:
            return f"did you mean `{close[0]}`?"
        return f"fields are {', '.join(BUILTIN_FIELDS)}, params.<name>, tags.<name> and metrics.<key> (with .min, .max or .last)"

    def number(self, value: Token, column: str) -> float:
        if value.kind in ("number", "duration"):
            return value.value
        if value.kind in ("string", "word"):
            try:
                number = float(value.value)
            except ValueError:
                number = math.nan
            if math.isfinite(number):  # `nan` and `inf` read as numbers to Python, and compare oddly with every run
                return number
        raise _at(value, f"`{value.text}` is not a number", f"`{column}` holds numbers")

    def boolean(self, value: Token, column: str) -> bool:
        text = str(value.value).lower() if value.kind in ("word", "string") else ""
        if text not in ("true", "false"):
            raise _at(value, f"`{value.text}` is not true or false", f"`{column}` holds true or false")
        return text == "true"

    def moment(self, value: Token, column: str) -> date | datetime:
        if value.kind == "date":
            return value.value
        if value.kind == "string" and DATE.fullmatch(value.value):  # a quoted date reads like a bare one
            return read_date(value.value, value.column)
        raise _at(
            value, f"`{value.text}` is not a date", f"`{column}` holds dates; write one like 2026-01-31 or 2026-01-31T14:30"
        )

    def text(self, value: Token, column: str) -> str:
        if value.kind not in ("string", "word"):
            raise _at(value, f"`{value.text}` is not text", f'`{column}` holds text; put it in quotes: "{value.text}"')
        text = value.value
        if column == "status" and text.lower() not in STATUSES:
            close = difflib.get_close_matches(text.lower(), STATUSES, n=1)
            hint = f"did you mean `{close[0]}`?" if close else f"a run is {', '.join(STATUSES)}"
            raise _at(value, f"unknown status `{text}`", hint)
        return text.lower() if column == "status" else text


def _normalized(name: str) -> str:
    """Built-in fields and the params. / tags. / metrics. prefixes in any case; keys as logged."""
    prefix, dot, rest = name.partition(".")
    if name.lower() in BUILTIN_FIELDS:
        return name.lower()
    return prefix.lower() + dot + rest if dot and prefix.lower() in NAMESPACES else name


def _kind(dtype: pl.DataType) -> str:
    if dtype.is_numeric():
        return "numbers"
    if dtype.is_temporal():
        return "dates"
    return "true or false" if dtype == pl.Boolean else "text"


def _at(token: Token, problem: str, hint: str | None = None) -> SearchError:
    message = f"{problem} at column {token.column}"
    return SearchError(f"{message}: {hint}" if hint else message, token.column)
