"""The workload every peer runs: the same runs, keys, steps and values, so only the system differs."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

KEYS = ("loss", "learning_rate", "eval_loss", "accuracy")
HISTORY_RUNS = 10
ACCURACY_THRESHOLD = 0.5


@dataclass
class Ingested:
    """What one ingest left behind: its timing, and the handles the queries need."""

    seconds: float
    points: int
    experiment: object
    run_ids: list
    flush_ms: list[float] | None = None  # TuneDeck only: how long each store write took

    @property
    def points_per_second(self) -> float:
        return self.points / self.seconds


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


def expected_filtered(runs: int, steps: int) -> int:
    """How many runs end with accuracy above the threshold: every peer's filter must return this many."""
    return sum(curves(index, steps)["accuracy"][-1] > ACCURACY_THRESHOLD for index in range(runs))


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())
