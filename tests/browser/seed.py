"""A store that looks like a team's week: a learning-rate sweep with one diverged run, adapters, a live run."""

import math
import random
from pathlib import Path

from core import open_store
from core.charts import PALETTE
from core.writer import MetricWriter

SAMPLE = "data/sample/sentiment.csv"
RATES = (0.5, 0.001, 0.002, 0.003, 0.005, 0.01)  # the first diverges, so the others are drawn over it
DIVERGED_RATE = 0.5


def loss_curve(steps: int, rate: float, rng: random.Random) -> list[float]:
    """A decaying loss; the diverged rate spikes to ~100x its start and ends far above it."""
    floor = 0.02 + 0.03 * RATES.index(rate)
    values = [2.0 / math.sqrt(step) * (1 + 0.05 * rng.random()) + floor for step in range(1, steps + 1)]
    if rate == DIVERGED_RATE:
        values = [value * (100 if step > steps * 0.8 else 1) for step, value in enumerate(values, start=1)]
    return values


def log_run(writer: MetricWriter, run_id: int, steps: int, rate: float, rng: random.Random) -> None:
    writer.log_series(run_id, "loss", range(1, steps + 1), loss_curve(steps, rate, rng))
    writer.log_series(run_id, "learning_rate", range(1, steps + 1), [rate * (1 - s / steps) for s in range(1, steps + 1)])
    writer.log_series(run_id, "samples_per_second", range(1, steps + 1), [900 + 300 * rng.random() for _ in range(steps)])
    evals = range(steps // 10, steps + 1, steps // 10)
    accuracy = 0.355 if rate == DIVERGED_RATE else 0.9 + rate
    offset = 3 if rate == DIVERGED_RATE else 0.02 * RATES.index(rate)
    writer.log_series(run_id, "eval_loss", evals, [1.0 / (1 + i) + offset for i, _ in enumerate(evals)])
    writer.log_series(run_id, "eval_accuracy", evals, [accuracy * (i + 1) / len(evals) for i, _ in enumerate(evals)])


def seed(data_dir: Path, steps: int = 1000) -> dict:
    """Returns the IDs a test needs: the sweep, its runs (the diverged one apart), a live run, adapters."""
    store = open_store(data_dir)
    rng = random.Random(7)
    sweep = store.create_experiment({"name": "sentiment sweep", "dataset": SAMPLE, "description": "Learning-rate sweep"})
    store.create_experiment({"name": "summarisation baseline", "dataset": SAMPLE})
    runs = [store.create_run(sweep, {"learning_rate": rate, "epochs": 3, "lora_rank": 8}) for rate in RATES]
    with MetricWriter(store) as writer:
        for run_id, rate in zip(runs, RATES, strict=True):
            log_run(writer, run_id, steps, rate, rng)
    adapters = []
    for run_id in runs:
        store.mark_running(run_id, worker="gpu-box:1")
        folder = data_dir / "adapters" / f"run-{run_id}"
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text("{}")
        spec = {"path": str(folder), "base_model": "tiny-base", "size_bytes": 2, "checksum": "sha256:seeded"}
        adapters.append(store.complete_run(run_id, spec).id)
    live_experiment = store.create_experiment({"name": "live run", "dataset": SAMPLE})
    live_run = store.create_run(live_experiment, {"learning_rate": 0.003, "max_steps": 200})
    store.mark_running(live_run, worker="gpu-box:2")
    with MetricWriter(store) as writer:
        writer.log_series(live_run, "loss", range(1, 51), [2.0 / math.sqrt(step) for step in range(1, 51)])
    return {
        "sweep": sweep,
        "runs": runs,
        "diverged": runs[RATES.index(DIVERGED_RATE)],
        "diverged_adapter": adapters[RATES.index(DIVERGED_RATE)],
        "adapters": adapters,
        "live_experiment": live_experiment,
        "live_run": live_run,
    }


def finish_live_run(data_dir: Path, run_id: int) -> None:
    """What a worker does at the end: the last points, then completion."""
    store = open_store(data_dir)
    with MetricWriter(store) as writer:
        writer.log_series(run_id, "loss", range(51, 201), [2.0 / math.sqrt(step) for step in range(51, 201)])
    store.complete_run(run_id)


PALETTE_OF_NORMAL_RUNS = list(PALETTE[1 : len(RATES)])  # runs take colours in run ID order; the first diverged
