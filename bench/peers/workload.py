"""The workload every peer runs: the same runs, params, keys, steps and values, so only the system differs."""

from pathlib import Path

import numpy as np

EXPERIMENT = "peers"
KEYS = ("loss", "learning_rate", "eval_loss", "accuracy")
PARAMS = {"lora_rank": 8, "learning_rate": 2e-4, "base_model": "gpt2"}
HISTORY_CALLS = 10
ACCURACY_THRESHOLD = 0.5
LIFECYCLE_STEPS = 10
ISSUE_SIZES = (200, 500, 2000, 100)  # the issues' sizes: runs x steps, then large runs x large steps


def curves(index: int, steps: int) -> dict[str, np.ndarray]:
    """Training-shaped values; final accuracy spreads from 0.3 to 0.9 over runs, so the filter keeps about 60%."""
    progress = np.arange(steps) / max(1, steps)
    reach = 0.3 + 0.6 * (index % 20) / 19
    return {
        "loss": 2.0 * np.exp(-5 * progress) + 0.1 + index * 1e-6,
        "learning_rate": 2e-4 * (1 - progress) + 1e-6,
        "eval_loss": 2.2 * np.exp(-4 * progress) + 0.15 + (index % 37) * 1e-3,
        "accuracy": 0.3 + (reach - 0.3) * (1 - np.exp(-6 * progress)),
    }


def step_dicts(index: int, steps: int) -> list[dict[str, float]]:
    """One run's values as a training loop has them: one dict of 4 floats per step (built before the clock)."""
    columns = {key: values.tolist() for key, values in curves(index, steps).items()}
    return [{key: columns[key][step] for key in KEYS} for step in range(steps)]


def expected_filtered(runs: int, steps: int) -> int:
    """How many runs end with accuracy above the threshold: every peer's filter must return this many."""
    return sum(curves(index, steps)["accuracy"][-1] > ACCURACY_THRESHOLD for index in range(runs))


def spread(run_ids: list, count: int = HISTORY_CALLS) -> list:
    """`count` runs evenly spread from the first to the last, so history calls touch the whole store."""
    if len(run_ids) <= count:
        return list(run_ids)
    return [run_ids[round(i * (len(run_ids) - 1) / (count - 1))] for i in range(count)]


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())
