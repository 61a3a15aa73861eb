"""The seam every trainer fits: what it is called with and what it returns."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from core.training_config import TrainingConfig

LogMetrics = Callable[[int, dict[str, float]], None]
LogParams = Callable[[dict[str, Any]], None]
LogSamples = Callable[[int, list[dict[str, Any]]], None]  # (step, rows as core.sample_rows.SampleRow fields)


class TrainingStopped(Exception):
    """should_stop() asked to stop; no adapter was written."""

    def __init__(self, step: int):
        super().__init__(f"training stopped on request before step {step}")
        self.step = step


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path | None  # None: the trainer produced no adapter to register
    steps: int
    metrics: dict[str, float]
    base_model: str | None = None  # when the trainer knows better than the config


class Trainer(Protocol):
    """`log` takes metrics at a step; `log_params` takes what the trainer decided (parameter counts, say).

    `checkpoint_dir` is where a trainer that checkpoints keeps them; `resume_from` is a checkpoint to
    continue from (only a config with `resume_from_run` sets it). `log_samples` takes what the model
    answered on `eval_samples` fixed eval examples at each evaluation.
    """

    def __call__(
        self,
        config: TrainingConfig,
        dataset: str | Path,
        output_dir: Path,
        log: LogMetrics,
        should_stop: Callable[[], bool] = ...,
        models_dir: Path | None = None,
        *,
        log_params: LogParams = ...,
        checkpoint_dir: Path | None = None,
        resume_from: Path | None = None,
        log_samples: LogSamples = ...,
    ) -> TrainResult: ...


def ignore_params(params: dict[str, Any]) -> None:
    """The log_params of a caller that does not record params (a test, say)."""


def ignore_samples(step: int, rows: list[dict[str, Any]]) -> None:
    """The log_samples of a caller that does not record samples."""
