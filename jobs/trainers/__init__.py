"""Trainers by the name a training config gives in `trainer`.

Each is a module whose `train` is a `jobs.trainers.base.Trainer`; one whose heavy dependencies are missing says
why in `is_available()` instead of failing to import.
"""

import importlib

from core.dataset_labels import is_label
from core.errors import ValidationError
from core.models import model_roots, resolve_model
from core.settings import get_settings
from core.training_config import TrainingConfig
from jobs.trainers.base import Trainer

SHIPPED = ("builtin", "peft")  # the trainers that load their base model and read the dataset themselves
TRAINERS = {
    "builtin": "jobs.trainers.builtin",
    "peft": "jobs.trainers.peft_trainer",
    "command": "jobs.trainers.command",
}


def trainer_for(dataset: str) -> str:
    """The trainer a new run's form opens on: the built-in one, or, for a dataset named by a label (an import's runs
    had no file), the command trainer, the one that can run there (it reads its own data)."""
    return "command" if is_label(dataset) else "builtin"


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


def check_base_model(config: TrainingConfig) -> None:
    """Before a run is queued where this machine's workers train (not team mode): the base model its trainer would
    load is there, so a mistyped name is said in the form, not in a failed run."""
    if get_settings().team_mode or config.trainer not in SHIPPED:
        return
    if config.trainer == "builtin":
        from jobs.trainers.builtin import base_model_path

        base_model_path(config.base_model)
    else:
        resolve_model(config.base_model, model_roots(get_settings().models_dir))
