"""Log a Hugging Face Trainer to TuneDeck, the way MLflow's and W&B's callbacks do.

    from core.integrations.huggingface import TuneDeckCallback

    with tracking.start_run("sentiment") as run:
        Trainer(..., callbacks=[TuneDeckCallback(run=run)]).train()

With no arguments the callback attaches to the worker's run (TUNEDECK_RUN_ID) when training
begins. Importing this module imports transformers: only scripts that train with it do so.
"""

import logging
import math
from collections.abc import Callable
from numbers import Real

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from core import tracking
from core.points import KEY_PATTERN

logger = logging.getLogger(__name__)

# The TrainingArguments that tell runs apart; the rest are plumbing.
PARAMS = (
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "warmup_steps",
    "lr_scheduler_type",
    "weight_decay",
    "optim",
    "seed",
)


class TuneDeckCallback(TrainerCallback):
    """Sends every numeric value the Trainer logs to `run` (an ActiveRun) or to `log(step, values)`.

    `should_stop` (or the run's cancellation) stops training after the current step. The run is
    flushed when training ends but never finished: the script or its `with` block decides how.
    """

    def __init__(
        self,
        run: tracking.ActiveRun | None = None,
        log: Callable[[int, dict[str, float]], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        self.run = run
        self._log = log
        self._should_stop = should_stop
        self.stop_requested = False

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        if not state.is_world_process_zero:
            return
        if self.run is None and self._log is None:
            self.run = tracking.start_run()
        if self.run is not None:
            self.run.log_params(training_params(args))

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs=None, **kwargs) -> None:
        values = loggable(logs or {})
        if values and state.is_world_process_zero:
            self._send(state.global_step, values)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        if self._stop_asked():
            self.stop_requested = True
            control.should_training_stop = True

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        if self.run is not None:
            self.run.writer.flush()

    def _send(self, step: int, values: dict[str, float]) -> None:
        if self.run is not None:
            self.run.log(step, values)
        if self._log is not None:
            self._log(step, values)

    def _stop_asked(self) -> bool:
        by_run = self.run is not None and self.run.should_stop
        return by_run or bool(self._should_stop and self._should_stop())


def training_params(args: TrainingArguments) -> dict:
    """The key hyperparameters, as plain JSON values (enums become their names)."""
    values = {name: getattr(args, name, None) for name in PARAMS}
    return {name: getattr(value, "value", value) for name, value in values.items() if value is not None}


def loggable(logs: dict) -> dict[str, float]:
    """The finite numbers among `logs`; NaN, inf and keys the store refuses are skipped with a warning."""
    values = {}
    for key, value in logs.items():
        if isinstance(value, bool) or not isinstance(value, Real):
            continue
        if not math.isfinite(value) or not KEY_PATTERN.match(key):
            logger.warning("TuneDeck skipped metric %r = %r: the store takes finite numbers under plain keys", key, value)
            continue
        values[key] = float(value)
    return values
