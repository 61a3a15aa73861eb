"""Which way is better for a metric: lower for losses and errors, higher for scores.

The rule reads the metric's name; an experiment can override it per key. Keys that fit
neither list (learning_rate, grad_norm, ...) have no direction and no "best".
"""

import re
from enum import StrEnum


class Direction(StrEnum):
    MIN = "min"
    MAX = "max"


_LOWER = ("loss", "perplexity", "ppl", "error", "err", "wer", "cer", "mse", "mae", "rmse", "nll")
_HIGHER = (
    "accuracy",
    "acc",
    "f1",
    "bleu",
    "rouge",
    "precision",
    "recall",
    "auc",
    "exact_match",
    "em",
    "score",
    "reward",
    "meteor",
    "chrf",
)


def _words(key: str) -> list[str]:
    return [word for word in re.split(r"[^a-z0-9]+", key.lower()) if word]


def _matches(key: str, names: tuple[str, ...]) -> bool:
    words = _words(key)
    return any(word == name or (len(name) >= 4 and word.startswith(name)) for word in words for name in names)


def direction_for(key: str, overrides: dict[str, Direction] | None = None) -> Direction | None:
    """The override if set, else the name rule; None when the name says nothing."""
    if overrides and key in overrides:
        return Direction(overrides[key])
    if _matches(key, _LOWER):
        return Direction.MIN
    if _matches(key, _HIGHER):
        return Direction.MAX
    return None


def rank(value: float, run_id: int, direction: Direction) -> tuple[float, int]:
    """The one rule for "best run": the smallest rank wins, so the best value, and on a tie the lowest run ID (the
    run made first). Neither the order runs are given in nor the order they completed changes the winner."""
    return (value if direction is Direction.MIN else -value, run_id)
