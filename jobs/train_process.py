"""One training run in its own process: `python -m jobs.train_process RUN_ID`.

The supervising worker starts it with stdout/stderr going to the run's log file and
the kernel's parent-death signal already set, so it dies with its worker (so a killed worker never leaves an orphan training on), stops
cleanly on SIGTERM, SIGINT or SIGHUP, and records the outcome itself: completed with the adapter,
or failed with the error and traceback.
"""

import shutil
import signal
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from core import open_store
from core.artifacts import adapter_of, checkpoints_of, last_checkpoint, publish_adapter
from core.dataset_labels import is_label
from core.datasets import confine
from core.errors import InvalidTransitionError, TuneDeckError, ValidationError, failure_text
from core.retry import until_back
from core.runs import parse_config
from core.settings import Settings, get_settings
from core.status import RunStatus
from core.system_metrics import SystemSampler, is_system_metric
from core.training_config import TrainingConfig
from core.writer import MetricWriter
from jobs.trainers import get_trainer
from jobs.trainers.base import TrainingStopped

EXIT_STOPPED = 3
UNKNOWN_BASE_MODEL = "unknown"  # a command that named no base model, and a config without one
_stop_requested = False


def _request_stop(signum, frame) -> None:
    global _stop_requested
    _stop_requested = True


def _progress(step: int, values: dict[str, float]) -> None:
    if step % 50 == 0 or any(key.startswith("eval") for key in values):
        print(f"step {step}: " + ", ".join(f"{key}={value:.4g}" for key, value in values.items()), flush=True)


def run(run_id: int) -> int:
    settings = get_settings()
    store, run, experiment = _opened(run_id)
    config = parse_config(run.config)
    output = adapter_of(settings.adapters_dir, run_id)
    print(f"run {run_id} of experiment {experiment.name!r}: trainer {config.trainer}, dataset {experiment.dataset}", flush=True)
    try:
        trainer = get_trainer(config.trainer)
        resume_from = _resume_point(settings, config)
        # Each eval's prediction samples are one store write (12 to 35 ms here): a thread of their own sends them, in order,
        # so training does not wait; leaving the block waits for the last, before the run is completed.
        samples = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunedeck-samples")
        writer, trained = MetricWriter(store, flush_points=5_000, flush_seconds=1.0), False
        try:
            with samples:

                def log(step: int, values: dict[str, float]) -> None:
                    writer.log(run_id, step, values)
                    _progress(step, values)

                # an experiment a script logged or an importer made has a label, not a file: a command gets "" for it
                dataset = "" if is_label(experiment.dataset) else confine(experiment.dataset, settings.allowed_dataset_roots)
                with SystemSampler(lambda step, values: writer.log(run_id, step, values), settings.system_metrics_interval):
                    result = trainer(
                        config,
                        dataset,
                        output,
                        log=log,
                        should_stop=lambda: _stop_requested,
                        log_params=lambda params: store.log_params(run_id, params),
                        checkpoint_dir=checkpoints_of(settings.checkpoints_dir, run_id),
                        resume_from=resume_from,
                        log_samples=lambda step, rows: samples.submit(_log_samples, store, run_id, step, rows),
                    )
            trained = True
        finally:
            _close(writer, trained)
        base_model = result.base_model or config.base_model or UNKNOWN_BASE_MODEL
        spec = publish_adapter(settings, result.adapter_dir, run_id, base_model) if result.adapter_dir else None
        adapter = _completed(store, run_id, spec)
        if spec is not None and Path(result.adapter_dir).resolve() == output.resolve() != Path(spec.path).resolve():
            shutil.rmtree(output, ignore_errors=True)  # registered on the shared root: this machine's copy is not needed
        where = f"adapter {adapter.name} v{adapter.version} at {adapter.path}" if adapter else "no adapter"
        print(f"completed after {_steps(store, run_id, result.steps)} steps; {where}", flush=True)
        return 0
    except TrainingStopped as stopped:
        print(f"stopped at step {stopped.step} on request", flush=True)
        return EXIT_STOPPED
    except InvalidTransitionError as error:
        print(f"not recorded: {error}", flush=True)  # cancelled or reaped meanwhile; that outcome stands
        return EXIT_STOPPED
    except Exception as error:
        # One of ours (a dataset missing a column, a setting refused, a command that exited 3) is a sentence that
        # says it all, in the log as on the run: a traceback (our own frames) is for code that crashed.
        details, reason = traceback.format_exc(), failure_text(error)
        ours = isinstance(error, TuneDeckError)
        print(f"training failed: {reason}" if ours else details, file=sys.stderr, flush=True)
        kept = None if ours else details
        try:
            until_back(lambda: store.fail_run(run_id, reason, traceback=kept))
        except InvalidTransitionError:
            pass
        return 1


def _opened(run_id: int):
    """The store, the run and its experiment, waiting out a store out of reach: a run whose training process starts
    as the database restarts trains once it is back (its worker keeps it alive meanwhile), as a running one does."""
    store = until_back(open_store)
    run = until_back(lambda: store.get_run(run_id))
    return store, run, until_back(lambda: store.get_experiment(run.experiment_id))


def _close(writer: MetricWriter, trained: bool) -> None:
    """A run that trained waits for the store to take its last points (a database restarting, say); one whose
    training failed or stopped does not wait, so its own error stays the one recorded: the journal keeps its points
    for whoever replays it next."""
    if trained:
        until_back(writer.close)
        return
    try:
        writer.close()
    except TuneDeckError as error:
        print(f"the last points wait in the journal: {error}", flush=True)


def _completed(store, run_id: int, spec):
    """complete_run, waiting out a store out of reach. A try that committed before its answer was lost leaves the
    run completed, which the next try finds: that is this run's outcome, not someone else's."""
    try:
        return until_back(lambda: store.complete_run(run_id, spec))
    except InvalidTransitionError:
        run = store.get_run(run_id)
        if run.status is not RunStatus.COMPLETED:
            raise
        return store.get_adapter(run.adapter.id) if run.adapter else None


def _steps(store, run_id: int, counted: int) -> int:
    """How far the run got: a command reporting through the SDK logs its steps past the trainer, so the store knows
    (its training metrics; system samples count in samples, not steps)."""
    try:
        metrics = store.get_run(run_id).metrics
    except TuneDeckError:
        return counted
    return max([counted, *(summary.last_step for key, summary in metrics.items() if not is_system_metric(key))])


def _log_samples(store, run_id: int, step: int, rows: list[dict]) -> None:
    """Samples are a view of training, not its outcome: one that cannot be stored is noted in the log, training goes on."""
    try:
        store.log_samples(run_id, step, rows)
    except Exception as error:  # sent from a thread of their own: nothing else would hear of it
        print(f"prediction samples of step {step} not stored: {type(error).__name__}: {error}", flush=True)


def _resume_point(settings: Settings, config: TrainingConfig) -> Path | None:
    """The last checkpoint of the run this one resumes, or None when it starts afresh."""
    if config.resume_from_run is None:
        return None
    folder = checkpoints_of(settings.checkpoints_dir, config.resume_from_run)
    found = last_checkpoint(folder)
    if found is None:
        raise ValidationError(
            f"resume_from_run: run {config.resume_from_run} left no checkpoint in {folder}; a peft run saves one "
            "every save_interval steps"
        )
    print(f"resuming from {found}", flush=True)
    return found


def main() -> None:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # SIGHUP: the worker's terminal was closed
        signal.signal(signum, _request_stop)
    sys.exit(run(int(sys.argv[1])))


if __name__ == "__main__":
    main()
