"""Trainers by the name a training config gives in `trainer`."""

from collections.abc import Callable

from core.errors import ValidationError
from jobs.trainers import builtin

TRAINERS: dict[str, Callable] = {"builtin": builtin.train}


def get_trainer(name: str) -> Callable:
    if name not in TRAINERS:
        raise ValidationError(f"unknown trainer {name!r}; available trainers: {', '.join(sorted(TRAINERS))}")
    return TRAINERS[name]
