"""How search results look on screen: the table of matched runs, their order, and tags as one cell."""

import polars as pl

from core.presenters import DIVERGED, SUMMARY_KEYS, TAG_SEPARATOR, each, format_seconds
from core.search_frame import OWN_TAGS
from core.status import ACTIVE

SHOWN_LIMIT = 1_000  # rows a results table draws; the count above it says how many matched


def running_count(frame: pl.DataFrame) -> int:
    """How many runs of the search frame are still queued or running: the Runs page refreshes itself while any is."""
    return int(frame["status"].is_in([status.value for status in ACTIVE]).sum()) if frame.height else 0


def tags_cell(frame: pl.DataFrame) -> list[pl.Expr]:
    """The run's own tags as one cell, 'base=llama, seed=3' (its experiment's are on the experiment's page, though a
    search finds runs by them too); no column when no run has any."""
    if OWN_TAGS not in frame.columns:
        return []
    return [pl.col(OWN_TAGS).fill_null("").alias("tags")]


def results_frame(
    matched: pl.DataFrame, named: tuple[str, ...] = (), limit: int = SHOWN_LIMIT, diverged: set[int] | frozenset[int] = frozenset()
) -> pl.DataFrame:
    """One row per matched run: who and where it is (a diverged run's status says so), the columns the query named
    (as typed, `.last` dropped), the usual summary metrics by their keys (as the experiment page heads them), then
    its tags, the widest and least read; `id` last, for links."""
    summary = [f"metrics.{key}.last" for key in SUMMARY_KEYS if f"metrics.{key}.last" in matched.columns]
    named = tuple(name for name in named if name not in _BASE)
    shown = matched.head(limit)
    shown = shown.with_columns(each(shown["duration"], format_seconds, pl.String).fill_null("–"))
    return shown.select(
        pl.format("{} (#{})", "name", "id").alias("run"),  # names repeat across experiments (run-1 in each)
        "experiment",
        pl.when(pl.col("id").is_in(list(diverged)))
        .then(pl.col("status") + TAG_SEPARATOR + DIVERGED)
        .otherwise(pl.col("status"))
        .alias("status"),
        "created",
        "duration",
        *(pl.col(name).alias(name.removesuffix(".last")) for name in dict.fromkeys(named)),
        *(pl.col(name).alias(name.removeprefix("metrics.").removesuffix(".last")) for name in summary if name not in named),
        *tags_cell(shown),
        "id",
    )


def order_runs(frame: pl.DataFrame, metric: str | None, descending: bool) -> pl.DataFrame:
    """Newest first, or by a metric's last value (runs without it last, ties by ID)."""
    if metric is None:
        return frame
    return frame.sort(f"metrics.{metric}.last", "id", descending=[descending, False], nulls_last=True)


_BASE = ("name", "experiment", "status", "created", "duration", "id")
