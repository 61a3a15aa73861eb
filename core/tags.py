"""What tags and notes may hold, checked once for every backend: tag values are text (numbers and booleans
are written as text, as MLflow does), keys use the characters metric keys use, notes are Markdown text."""

import math
from typing import Any

from pydantic import TypeAdapter

from core.entities import NoteText, TagKey, TagValue, Target
from core.errors import ValidationError, quoted
from core.validation import friendly

MAX_TAGS_PER_CALL = 100
_KEY = TypeAdapter(TagKey)
_VALUE = TypeAdapter(TagValue)


def checked_target(target: Any) -> Target:
    if target not in ("experiment", "run"):
        raise ValidationError(f"tags and notes go on an experiment or a run, not {str(target)[:50]!r}")
    return target


def checked_tags(tags: Any) -> dict[str, str]:
    """{'base': 'llama', 'seed': 3} -> {'base': 'llama', 'seed': '3'}; a bad key or value names itself."""
    if not isinstance(tags, dict) or not tags:
        raise ValidationError("tags must be a non-empty dict of name -> value, e.g. {'base': 'llama'}")
    if len(tags) > MAX_TAGS_PER_CALL:
        raise ValidationError(f"set at most {MAX_TAGS_PER_CALL} tags at once; this call has {len(tags)}")
    checked = {}
    for key, value in tags.items():
        key = friendly(_KEY, key, "tag name")
        checked[key] = friendly(_VALUE, _as_text(key, value), f"value of tag {quoted(key)}")
    return checked


def checked_tag_keys(keys: Any) -> list[str]:
    if isinstance(keys, str) or not isinstance(keys, list | tuple) or not keys:
        raise ValidationError("name the tags to remove as a non-empty list, e.g. ['base']")
    return [friendly(_KEY, key, "tag name") for key in keys]


def checked_note(note: Any) -> str:
    return friendly(TypeAdapter(NoteText), note, "note")


def _as_text(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(f"tag {key!r} must be a finite number, not {value}")  # as a metric's or a param's value
    if isinstance(value, int | float | str):
        return str(value)
    raise ValidationError(f"tag {key!r} must be text, a number or true/false, not {type(value).__name__}")
