"""Tags, notes and the search frame, on either backend (a part of core.sql_store.SqlStore, kept apart to stay small).

The SQL is plain (standard types, `?` placeholders, ON CONFLICT upserts) so another backend can run it as is.
"""

from typing import Any

import polars as pl

from core.entities import Target
from core.errors import NotFoundError, ValidationError
from core.search_frame import RUNS_SCHEMA, build_search_frame
from core.sql import first, frame, rows
from core.tags import checked_note, checked_tag_keys, checked_tags, checked_target

_EXISTS = {"experiment": "SELECT 1 FROM experiments WHERE id = ?", "run": "SELECT 1 FROM runs WHERE id = ?"}


class Annotations:
    """Mixed into SqlStore: expects its `_write`, `_read` and `clock`."""

    def set_tags(self, target: Target, target_id: int, tags: dict[str, Any]) -> None:
        target, checked = checked_target(target), checked_tags(tags)

        def op(con) -> None:
            _require(con, target, target_id)
            for key, value in checked.items():
                rows(
                    con,
                    "INSERT INTO tags (target, target_id, key, value) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (target, target_id, key) DO UPDATE SET value = excluded.value",
                    [target, target_id, key, value],
                )

        self._write(op)

    def remove_tags(self, target: Target, target_id: int, keys: list[str]) -> None:
        target, checked = checked_target(target), checked_tag_keys(keys)

        def op(con) -> None:
            _require(con, target, target_id)
            for key in checked:
                rows(con, "DELETE FROM tags WHERE target = ? AND target_id = ? AND key = ?", [target, target_id, key])

        self._write(op)

    def set_note(self, target: Target, target_id: int, note: str) -> None:
        target, body = checked_target(target), checked_note(note)

        def op(con) -> None:
            _require(con, target, target_id)
            rows(con, "DELETE FROM notes WHERE target = ? AND target_id = ?", [target, target_id])
            if body:
                rows(
                    con,
                    "INSERT INTO notes (target, target_id, body, updated_at) VALUES (?, ?, ?, ?)",
                    [target, target_id, body, self.clock()],
                )

        self._write(op)

    def search_frame(self, experiment_ids: list[int] | None = None) -> pl.DataFrame:
        where, params = _scope(experiment_ids)

        def query(con) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
            if experiment_ids:
                found = {row[0] for row in rows(con, f"SELECT id FROM experiments e WHERE {where}", params)}
                missing = [i for i in experiment_ids if i not in found]
                if missing:
                    raise NotFoundError(f"no experiment with ID {', '.join(map(str, missing))}")
            return (
                frame(con, _SEARCH_RUNS.format(where=where), params),
                frame(con, _SEARCH_SUMMARIES.format(where=where), params),
                frame(con, _SEARCH_TAGS.format(where=where), params),
            )

        runs, summaries, tags = self._read(query)
        if runs.is_empty():
            runs = pl.DataFrame(schema=RUNS_SCHEMA)
        return build_search_frame(runs, summaries, tags, now=self.clock())

    def _annotations(self, con, target: Target, ids: list[int]) -> tuple[dict[int, dict[str, str]], dict[int, str]]:
        """The tags and notes of these experiments or runs, by ID: read inside the caller's transaction."""
        tags: dict[int, dict[str, str]] = {}
        for target_id, key, value in rows(
            con,
            "SELECT target_id, key, value FROM tags WHERE target = ? AND target_id IN (SELECT unnest(?::BIGINT[])) "
            "ORDER BY target_id, key",
            [target, ids],
        ):
            tags.setdefault(target_id, {})[key] = value
        notes = dict(
            rows(
                con,
                "SELECT target_id, body FROM notes WHERE target = ? AND target_id IN (SELECT unnest(?::BIGINT[]))",
                [target, ids],
            )
        )
        return tags, notes


def _require(con, target: Target, target_id: Any) -> None:
    if isinstance(target_id, bool) or not isinstance(target_id, int) or target_id < 1:
        raise ValidationError(f"{target} ID must be a positive whole number, got {target_id!r}")
    if not first(con, _EXISTS[target], [target_id]):
        raise NotFoundError(f"no {target} with ID {target_id}")


def _scope(experiment_ids: Any) -> tuple[str, list]:
    """Which runs a search sees: those of the experiments named (deleted or not), else of every live experiment."""
    if experiment_ids is None:
        return "e.deleted_at IS NULL", []
    if not isinstance(experiment_ids, list | tuple) or not all(
        isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in experiment_ids
    ):
        raise ValidationError("experiment IDs must be a list of positive whole numbers")
    return "e.id IN (SELECT unnest(?::BIGINT[]))", [list(experiment_ids)]


_SEARCH_RUNS = """
    SELECT r.id, r.experiment_id, e.name AS experiment, r.name, r.status, r.created_at, r.started_at, r.ended_at,
           r.config, n.body AS note
    FROM runs r JOIN experiments e ON e.id = r.experiment_id
    LEFT JOIN notes n ON n.target = 'run' AND n.target_id = r.id
    WHERE {where}
"""
_SEARCH_SUMMARIES = """
    SELECT s.run_id, s.key, s.last_value AS last, s.min_value AS min, s.max_value AS max
    FROM metric_summaries s JOIN runs r ON r.id = s.run_id JOIN experiments e ON e.id = r.experiment_id
    WHERE {where}
"""
_SEARCH_TAGS = """
    WITH scoped AS (SELECT r.id, r.experiment_id FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE {where})
    SELECT s.id AS run_id, t.key, t.value, 1 AS own FROM scoped s JOIN tags t ON t.target = 'run' AND t.target_id = s.id
    UNION ALL
    SELECT s.id AS run_id, t.key, t.value, 0 AS own FROM scoped s JOIN tags t ON t.target = 'experiment' AND t.target_id = s.experiment_id
"""
