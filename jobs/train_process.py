"""One training run in its own process: `python -m jobs.train_process RUN_ID`.

The supervising worker starts it with stdout/stderr going to the run's log file and
the kernel's parent-death signal already set, so it dies with its worker (so a killed worker never leaves an orphan training on), stops
cleanly on SIGTERM/SIGINT, and records the outcome itself: completed with the adapter,
or failed with the error and traceback.
"""

import signal
import sys
import traceback

from core import open_store
from core.artifacts import describe_adapter
from core.datasets import confine
from core.errors import InvalidTransitionError
from core.runs import parse_config
from core.settings import get_settings
from core.writer import MetricWriter
from jobs.trainers import get_trainer
from jobs.trainers.base import TrainingStopped

EXIT_STOPPED = 3
_stop_requested = False


def _request_stop(signum, frame) -> None:
    global _stop_requested
    _stop_requested = True


def _progress(step: int, values: dict[str, float]) -> None:
    if step % 50 == 0 or any(key.startswith("eval") for key in values):
        print(f"step {step}: " + ", ".join(f"{key}={value:.4g}" for key, value in values.items()), flush=True)


def run(run_id: int) -> int:
    settings = get_settings()
    store = open_store()
    run = store.get_run(run_id)
    experiment = store.get_experiment(run.experiment_id)
    config = parse_config(run.config)
    output = settings.adapters_dir / f"run-{run_id}"
    print(f"run {run_id} of experiment {experiment.name!r}: trainer {config.trainer}, dataset {experiment.dataset}", flush=True)
    try:
        trainer = get_trainer(config.trainer)
        with MetricWriter(store, flush_points=5_000, flush_seconds=1.0) as writer:

            def log(step: int, values: dict[str, float]) -> None:
                writer.log(run_id, step, values)
                _progress(step, values)

            dataset = confine(experiment.dataset, settings.allowed_dataset_roots)
            result = trainer(config, dataset, output, log=log, should_stop=lambda: _stop_requested)
        spec = describe_adapter(result.adapter_dir, result.base_model or config.base_model) if result.adapter_dir else None
        adapter = store.complete_run(run_id, spec)
        where = f"adapter {adapter.name} v{adapter.version} at {adapter.path}" if adapter else "no adapter"
        print(f"completed after {result.steps} steps; {where}", flush=True)
        return 0
    except TrainingStopped as stopped:
        print(f"stopped at step {stopped.step} on request", flush=True)
        return EXIT_STOPPED
    except InvalidTransitionError as error:
        print(f"not recorded: {error}", flush=True)  # cancelled or reaped meanwhile; that outcome stands
        return EXIT_STOPPED
    except Exception as error:
        details = traceback.format_exc()
        print(details, file=sys.stderr, flush=True)
        try:
            store.fail_run(run_id, f"{type(error).__name__}: {error}", traceback=details)
        except InvalidTransitionError:
            pass
        return 1


def main() -> None:
    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    sys.exit(run(int(sys.argv[1])))


if __name__ == "__main__":
    main()
