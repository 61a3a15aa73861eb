"""Trainers by the name a training config gives in `trainer`.

Each is a module whose `train` is a `jobs.trainers.base.Trainer`; one whose heavy dependencies are missing says
why in `is_available()` instead of failing to import.
"""

import importlib

from core.errors import ValidationError
from jobs.trainers.base import Trainer

TRAINERS = {
    "builtin": "jobs.trainers.builtin",
    "peft": "jobs.trainers.peft_trainer",
    "command": "jobs.trainers.command",
}


def unavailable_reason(name: str) -> str | None:
    """None when the trainer can run here, else what to install."""
    module = importlib.import_module(TRAINERS[name])
    check = getattr(module, "is_available", None)
    return check() if check else None


def available_trainers() -> dict[str, str | None]:
    return {name: unavailable_reason(name) for name in TRAINERS}


def get_trainer(name: str) -> Trainer:
    if name not in TRAINERS:
        raise ValidationError(f"unknown trainer {name!r}; available trainers: {', '.join(sorted(TRAINERS))}")
    reason = unavailable_reason(name)
    if reason:
        raise ValidationError(f"the {name} trainer is unavailable here: {reason}")
    return importlib.import_module(TRAINERS[name]).train
