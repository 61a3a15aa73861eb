"""Params every trainer reports under the same names, so runs of different trainers compare side by side."""

import json
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


# What one run's params may hold, as MLflow bounds its own (keys 250 characters, values 6,000): one script's 100,000
# params, or a 20 MB value, made the runs' search table 100,000 columns wide and the Runs page take 18 s for everyone.
MAX_PARAMS = 1_000
MAX_PARAM_KEY = 250
MAX_PARAM_VALUE = 6_000  # characters of a text as typed, of anything else as JSON


def params_problem(params: dict[str, Any], what: str) -> str | None:
    """What is over a bound in params, said as a sentence; else None."""
    if len(params) > MAX_PARAMS:
        return f"{what}: a run holds at most {MAX_PARAMS:,} params, and these are {len(params):,}"
    for key, value in params.items():
        if problem := param_problem(key, value):
            return problem
    return None


def param_problem(key: str, value: Any) -> str | None:
    if len(key) > MAX_PARAM_KEY:
        return f"param name {key[:40]!r}... is too long: at most {MAX_PARAM_KEY} characters, and it has {len(key):,}"
    size = _size(value)
    if size > MAX_PARAM_VALUE:
        return f"param {key[:40]!r} is too long: a value is at most {MAX_PARAM_VALUE:,} characters, and this one has {size:,}"
    return None


def _size(value: Any) -> int:
    """A text's length as typed (MLflow's measure); anything else's as compact JSON, characters as they are."""
    if isinstance(value, str):
        return len(value)
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=as_json_value))


def fitting_params(params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The params within the bounds, and a sentence for each left out: what an importer or an integration keeps of
    a source's params rather than stopping on one (an MLflow param of 6,000 characters, a long module list)."""
    kept, left_out = {}, []
    for key, value in params.items():
        if problem := param_problem(key, value):
            left_out.append(f"{problem}: left out")
        elif len(kept) < MAX_PARAMS:
            kept[key] = value
        else:
            left_out.append(f"param {key[:40]!r} left out: a run holds at most {MAX_PARAMS:,} params")
    return kept, left_out


def chosen_by_user(key: str) -> bool:
    """Whether a param is one a user chose: not a trainer's report, not an importer's bookkeeping."""
    return key not in REPORTED_KEYS and not key.startswith(IMPORT_PREFIX)
