"""The "peft" trainer: a real LoRA fine-tune of a Hugging Face model with PEFT and the Trainer.

The base model is a local folder (config.json, weights and tokenizer, as `save_pretrained` writes
them); nothing is downloaded. `task` picks a causal LM (learn the text) or a sequence classifier
(learn the label, report eval_accuracy). torch, transformers and peft are optional
(`pip install -r requirements-train.txt`), so they are imported only when training starts.
"""

import importlib.util
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import ValidationError
from core.integrations.hf_samples import prompt_and_reference
from core.models import model_roots, resolve_model
from core.sample_rows import sample_positions
from core.settings import get_settings
from core.training_config import ALL_LINEAR, AUTO_MODULES, TrainingConfig
from jobs.trainers import peft_data
from jobs.trainers.base import LogMetrics, LogParams, LogSamples, TrainingStopped, TrainResult, ignore_params, ignore_samples

REQUIRED = ("torch", "transformers", "peft", "accelerate")
INSTALL_HINT = 'pip install -r requirements-train.txt (installed as a package: pip install ".[train]" in the project folder)'
# Without torch, requirements-train.txt alone pulls PyPI's CUDA build (several GB) even where there is no GPU.
TORCH_FIRST = f"install torch first, in the build for this machine (README: Set up, run, test), then {INSTALL_HINT}"
MAX_LENGTH = 512  # tokens per example, or fewer when the model's context is shorter
SCHEDULES = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}
KEEP_CHECKPOINTS = 2
TASK_FILE = "tunedeck_task.json"  # beside the adapter: the task and, for a classifier, its labels in order
ONE_THREAD_BELOW = 5_000_000  # parameters: below this, CPU threads spend more time handing off than computing


def is_available() -> str | None:
    """None when the optional packages are installed, else why not and how to fix it.

    It looks the packages up without importing them: importing torch takes seconds and
    hundreds of MB, too much for a page that only lists trainers.
    """
    missing = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
    if missing:
        hint = TORCH_FIRST if "torch" in missing else INSTALL_HINT
        return f"the peft trainer needs torch, transformers and peft ({', '.join(missing)} missing): {hint}"
    return None


@dataclass
class _Data:
    train: list
    eval: list
    labels: list[str] | None  # the classes, for classification
    shown: list[dict]  # the eval examples whose answers are logged as samples (example_id, input, reference)


def train(
    config: TrainingConfig,
    dataset: str | Path,
    output_dir: Path,
    log: LogMetrics,
    should_stop: Callable[[], bool] = lambda: False,
    models_dir: Path | None = None,
    *,
    log_params: LogParams = ignore_params,
    checkpoint_dir: Path | None = None,
    resume_from: Path | None = None,
    log_samples: LogSamples = ignore_samples,
) -> TrainResult:
    """LoRA-tune `config.base_model` on `dataset`, logging every step and eval (with the answers on
    `eval_samples` eval examples: a label, or a greedy generation), then save the adapter.

    Checkpoints go to `checkpoint_dir` every `save_interval` steps; `resume_from` continues one.
    """
    if reason := is_available():
        raise ValidationError(reason)
    os.environ["HF_HUB_OFFLINE"] = "1"  # a local folder only: never reach for the hub
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    model_dir = resolve_model(config.base_model, model_roots(models_dir or get_settings().models_dir))
    tokenizer = load_tokenizer(model_dir)
    data = _data(config, dataset, tokenizer, model_dir)
    model = _with_lora(_base_model(model_dir, config, tokenizer, data.labels), config)
    _fit_threads(model)
    latest: dict[str, float] = {}

    def record(step: int, values: dict[str, float]) -> None:
        latest.update(values)
        log(step, values)

    if should_stop():
        raise TrainingStopped(1)
    from core.integrations.huggingface import TuneDeckCallback  # imports transformers: only once training starts

    callback = TuneDeckCallback(
        log=record,
        should_stop=should_stop,
        log_params=log_params,
        eval_examples=data.shown,
        tokenizer=tokenizer,
        log_samples=log_samples,
    )
    with tempfile.TemporaryDirectory(prefix="tunedeck-peft-") as scratch:
        args = training_arguments(config, checkpoint_dir or Path(scratch), checkpoints=checkpoint_dir is not None)
        steps = _fit(model, args, data, tokenizer, callback, resume_from)
    model.save_pretrained(output_dir)
    (output_dir / TASK_FILE).write_text(json.dumps({"task": config.task, "labels": data.labels}, indent=2) + "\n")
    return TrainResult(adapter_dir=output_dir, steps=steps, metrics=latest)


def lora_config(config: TrainingConfig, conv1d: bool = False):
    """PEFT's LoraConfig; 'all-linear' goes as PEFT's string, 'auto' leaves the choice to PEFT's table."""
    from peft import LoraConfig

    modules = list(config.target_modules)
    targets = ALL_LINEAR if modules == [ALL_LINEAR] else None if modules == [AUTO_MODULES] else modules
    return LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        task_type="SEQ_CLS" if config.task == "classification" else "CAUSAL_LM",
        fan_in_fan_out=conv1d,  # GPT-2 style Conv1D layers store their weights transposed
    )


def training_arguments(config: TrainingConfig, output: Path, checkpoints: bool = False):
    """The Trainer's settings: every step logged, eval every `eval_interval`, checkpoints when asked."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(output),
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs or 1,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        seed=config.seed,
        warmup_steps=config.warmup_steps,
        lr_scheduler_type=SCHEDULES[config.lr_schedule],
        eval_strategy="steps",
        eval_steps=config.eval_interval,
        logging_steps=1,
        save_strategy="steps" if checkpoints else "no",
        save_steps=config.save_interval,
        save_total_limit=KEEP_CHECKPOINTS,
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_pin_memory=False,
    )


def load_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ValidationError(
            f"base_model: cannot load a tokenizer from {model_dir} ({exc}); save the model's tokenizer there "
            "with tokenizer.save_pretrained"
        ) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token  # GPT-2 style models ship no pad token
    return tokenizer


def _data(config: TrainingConfig, dataset, tokenizer, model_dir: Path) -> _Data:
    max_length = _max_length(model_dir, tokenizer)
    if config.task == "classification":
        texts, labels = peft_data.load_labelled(dataset)
        classes = peft_data.label_names(labels)
        train_rows, eval_rows = peft_data.split(peft_data.encode_labelled(tokenizer, texts, labels, classes, max_length))
        shown = [_example(i, texts[i], str(labels[i])) for i in _shown(eval_rows, config)]
        return _Data(train_rows, eval_rows, classes, shown)
    examples = peft_data.load_examples(dataset)
    train_rows, eval_rows = peft_data.split(peft_data.encode(tokenizer, examples, max_length))
    shown = [_example(i, *prompt_and_reference(*examples[i])) for i in _shown(eval_rows, config)]
    return _Data(train_rows, eval_rows, None, shown)


def _shown(eval_rows: list, config: TrainingConfig) -> list[int]:
    """The dataset rows of the fixed, seeded set of eval examples whose answers are logged."""
    return [eval_rows[at]["example"] for at in sample_positions(len(eval_rows), config.eval_samples or 0)]


def _example(row: int, text: str, reference: str) -> dict:
    return {"example_id": row, "input": text, "reference": reference}


def _base_model(model_dir: Path, config: TrainingConfig, tokenizer, labels: list[str] | None):
    """The frozen base: a causal LM, or the same body with a fresh classification head (seeded)."""
    from transformers import set_seed

    set_seed(config.seed)  # a classification head starts from random weights: the seed fixes them
    return load_base(model_dir, tokenizer, labels)


def load_base(model_dir: Path, tokenizer, labels: list[str] | None):
    """A causal LM, or with `labels` the same body under a classification head for them."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
    from transformers.utils import logging

    logging.disable_progress_bar()
    try:
        if labels is None:
            return AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32)
        return AutoModelForSequenceClassification.from_pretrained(
            model_dir,
            local_files_only=True,
            dtype=torch.float32,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            pad_token_id=tokenizer.pad_token_id,
        )
    except (OSError, ValueError) as exc:
        kind = "sequence classifier" if labels else "causal LM"
        raise ValidationError(f"base_model: cannot load {model_dir} as a {kind} ({exc}); check task and base_model") from None


def _with_lora(model, config: TrainingConfig):
    from peft import get_peft_model

    conv1d = any(type(module).__name__ == "Conv1D" for module in model.modules())
    try:
        return get_peft_model(model, lora_config(config, conv1d))
    except ValueError as exc:
        raise ValidationError(
            f"target_modules: {', '.join(config.target_modules)} cannot be adapted in {config.base_model} ({exc}); use "
            f"'{ALL_LINEAR}', '{AUTO_MODULES}', or some of its layers: {', '.join(adaptable_modules(model))}"
        ) from None


def _fit_threads(model) -> None:
    import torch

    if not torch.cuda.is_available() and sum(p.numel() for p in model.parameters()) < ONE_THREAD_BELOW:
        torch.set_num_threads(1)


def adaptable_modules(model) -> list[str]:
    """The names LoRA can target in `model`: its linear (and GPT-2 Conv1D) layers, by last name part."""
    kinds = ("Linear", "Conv1D")
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules() if type(module).__name__ in kinds and name})


def _fit(model, args, data: _Data, tokenizer, callback, resume_from: Path | None) -> int:
    """Evaluates the untouched base at step 0 (unless resuming), trains, returns the last step."""
    from transformers import PrinterCallback, Trainer

    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.eval,
        data_collator=peft_data.collator(tokenizer.pad_token_id),
        compute_metrics=peft_data.accuracy if data.labels else None,
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)  # the callback logs metrics; the job log stays readable
    if resume_from is None:
        trainer.evaluate()  # the baseline every later eval is measured against
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    step = trainer.state.global_step
    if callback.stop_requested:
        raise TrainingStopped(step + 1)
    return step


def _max_length(model_dir: Path, tokenizer) -> int:
    from transformers import AutoConfig

    context = getattr(AutoConfig.from_pretrained(model_dir, local_files_only=True), "max_position_embeddings", None)
    return min(MAX_LENGTH, context or MAX_LENGTH, tokenizer.model_max_length)
