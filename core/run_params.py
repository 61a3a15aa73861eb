"""Params every trainer reports under the same names, so runs of different trainers compare side by side."""

from typing import Any

import numpy as np


def training_length(total_steps: int, steps_per_epoch: int) -> dict[str, Any]:
    """The steps a run really takes and the epochs they make, whichever of epochs / max_steps decided."""
    epochs = total_steps / steps_per_epoch if steps_per_epoch else None
    length = {"total_steps": int(total_steps), "steps_per_epoch": int(steps_per_epoch)}
    return length | ({"effective_epochs": round(epochs, 4)} if epochs is not None else {})


def parameter_counts(trainable: int, total: int) -> dict[str, Any]:
    """Trainable (adapter) and total parameters: how much of the model LoRA touches."""
    share = 100.0 * trainable / total if total else 0.0
    return {"trainable_params": int(trainable), "total_params": int(total), "trainable_percent": round(share, 4)}


# What trainers report about a run rather than what a user chose: it follows from the settings, so grouping or
# plotting by it as well adds columns, not information.
REPORTED_KEYS = frozenset({*training_length(1, 1), *parameter_counts(1, 1), "lora_target_modules"})  # the modules resolved
# Where an imported run came from (`import.source`, `import.started_at`): bookkeeping, one value per run.
IMPORT_PREFIX = "import."
IMPORT_WORKER = "import"  # the worker an imported run is recorded with: only such a run takes its source's times


def as_json_value(value: Any) -> Any:
    """A param JSON has no form for, as the store keeps it: a NumPy (or torch) number as the number it holds, an array
    as its list (np.float32(3e-4) was kept as text, and drew on a category axis), anything else (a path) as its text."""
    if isinstance(value, np.ndarray) and value.ndim:
        return [as_json_value(item) for item in value]  # each element as a scalar below
    if isinstance(value, np.floating):  # np.float32(3e-4) as 0.0003, the number written, not 0.0003000000142492354
        return float(str(value)) if value.dtype.itemsize < 8 else float(value)  # a longdouble as the nearest float
    tolist = getattr(value, "tolist", None)
    plain = tolist() if callable(tolist) and hasattr(value, "dtype") else value
    return plain if isinstance(plain, int | float | str | bool | list | dict) or plain is None else str(plain)


def chosen_by_user(key: str) -> bool:
    """Whether a param is one a user chose: not a trainer's report, not an importer's bookkeeping."""
    return key not in REPORTED_KEYS and not key.startswith(IMPORT_PREFIX)
