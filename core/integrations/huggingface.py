"""Log a Hugging Face Trainer to TuneDeck, the way MLflow's and W&B's callbacks do.

    from core.integrations.huggingface import TuneDeckCallback

    with tracking.start_run("sentiment") as run:
        Trainer(..., callbacks=[TuneDeckCallback(run=run)]).train()

With no arguments the callback attaches to the worker's run (TUNEDECK_RUN_ID) when training
begins. Given `eval_examples` (dicts with example_id, input, reference) and the tokenizer, it logs
what the model answers on them after every evaluation, as the run's prediction samples. Besides the metrics it records as params what MLflow's and W&B's integrations do: the
main training arguments, the steps and epochs training really takes, trainable / total
parameter counts, and a PEFT model's LoRA config. Importing this module imports transformers:
only scripts that train with it do so.
"""

import logging
import math
from collections.abc import Callable
from numbers import Real

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from core import tracking
from core.integrations import hf_samples
from core.points import KEY_PATTERN
from core.run_params import fitting_params, parameter_counts, training_length

logger = logging.getLogger(__name__)

# The TrainingArguments that tell runs apart; the rest are plumbing. Epochs and max_steps are
# recorded as what decides the length (see training_params).
PARAMS = (
    "learning_rate",
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
        log_params: Callable[[dict], None] | None = None,
        *,
        eval_examples: list[dict] | None = None,
        tokenizer=None,
        log_samples: Callable[[int, list[dict]], None] | None = None,
        max_new_tokens: int = hf_samples.MAX_NEW_TOKENS,
    ):
        self.run = run
        self._log = log
        self._log_params = log_params
        self._log_samples = log_samples
        self.eval_examples = eval_examples or []
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        if self.eval_examples and tokenizer is None:
            raise ValueError("TuneDeckCallback: eval_examples need the tokenizer, to read and write the model's text")
        self._should_stop = should_stop
        self.stop_requested = False

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        if not state.is_world_process_zero:
            return
        if self.run is None and self._log is None:
            self.run = tracking.start_run()
        params = {**training_params(args, state, kwargs.get("train_dataloader")), **model_params(kwargs.get("model"))}
        params, left_out = fitting_params(params)  # a long module list must not stop training before its first step
        for note in left_out:
            logger.warning("TuneDeck %s", note)
        if self.run is not None:
            self.run.log_params(params)
        if self._log_params is not None:
            self._log_params(params)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs=None, **kwargs) -> None:
        values = loggable(logs or {})
        if values and state.is_world_process_zero:
            self._send(state.global_step, values)

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model=None, **kwargs) -> None:
        if not (self.eval_examples and model is not None and state.is_world_process_zero):
            return
        rows = hf_samples.answer_rows(model, self.tokenizer, self.eval_examples, self.max_new_tokens)
        if self.run is not None:
            self.run.log_samples(rows, step=state.global_step)
        if self._log_samples is not None:
            self._log_samples(state.global_step, rows)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        if self._stop_asked():
            self.stop_requested = True
            control.should_training_stop = True

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        if self.run is not None:
            self.run.flush()

    def _send(self, step: int, values: dict[str, float]) -> None:
        if self.run is not None:
            self.run.log(step, values)
        if self._log is not None:
            self._log(step, values)

    def _stop_asked(self) -> bool:
        by_run = self.run is not None and self.run.should_stop
        return by_run or bool(self._should_stop and self._should_stop())


def training_params(args: TrainingArguments, state: TrainerState | None = None, dataloader=None) -> dict:
    """The key hyperparameters, as plain JSON values (enums become their names).

    Only the setting that decides the length is kept (max_steps wins over num_train_epochs), and
    with the Trainer's state the real length: total_steps, steps_per_epoch, effective_epochs.
    """
    values = {name: getattr(args, name, None) for name in PARAMS}
    values |= {"max_steps": args.max_steps} if args.max_steps > 0 else {"num_train_epochs": args.num_train_epochs}
    params = {name: getattr(value, "value", value) for name, value in values.items() if value is not None}
    if state is not None and state.max_steps > 0:
        batches = _length(dataloader)
        per_epoch = math.ceil(batches / args.gradient_accumulation_steps) if batches else 0
        params |= training_length(state.max_steps, per_epoch)
    return params


def model_params(model) -> dict:
    """Trainable and total parameter counts, and the LoRA settings when `model` is a PEFT model."""
    if model is None:
        return {}
    parameters = list(model.parameters())
    trainable = sum(p.numel() for p in parameters if p.requires_grad)
    params = parameter_counts(trainable, sum(p.numel() for p in parameters))
    lora = getattr(model, "peft_config", {}).get("default")
    if lora is not None:
        params |= {
            "peft_type": getattr(lora.peft_type, "value", str(lora.peft_type)),
            "peft_task_type": getattr(lora.task_type, "value", lora.task_type),
            "lora_r": getattr(lora, "r", None),
            "lora_alpha": getattr(lora, "lora_alpha", None),
            "lora_dropout": getattr(lora, "lora_dropout", None),
            "lora_target_modules": _names(getattr(lora, "target_modules", None)),
            "lora_modules_to_save": _names(getattr(lora, "modules_to_save", None)),
        }
    return {key: value for key, value in params.items() if value is not None}


def _names(modules) -> list[str] | str | None:
    if modules is None or isinstance(modules, str):
        return modules
    return sorted(modules)


def _length(dataloader) -> int:
    try:
        return len(dataloader) if dataloader is not None else 0
    except TypeError:  # an iterable dataset has no length
        return 0


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
