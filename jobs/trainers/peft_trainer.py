"""The "peft" trainer: a real LoRA fine-tune of a causal language model with Hugging Face PEFT.

The base model is a local folder (config.json, weights and tokenizer, as `save_pretrained` writes
them); nothing is downloaded. torch, transformers and peft are optional
(`pip install -r requirements-train.txt`), so they are imported only when training starts.
"""

import importlib.util
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from core.datasets import read_dataset
from core.errors import DatasetError, ValidationError
from core.training_config import TrainingConfig
from jobs.trainers.builtin import DEFAULT_MODELS_DIR, EVAL_FRACTION, SPLIT_SEED, TrainingStopped, TrainResult

REQUIRED = ("torch", "transformers", "peft", "accelerate")
INSTALL_HINT = "pip install -r requirements-train.txt"
MAX_LENGTH = 512  # tokens per example, or fewer when the model's context is shorter
IGNORE = -100  # the label PyTorch's cross-entropy skips: prompt and padding tokens
SCHEDULES = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}


def is_available() -> str | None:
    """None when the optional packages are installed, else why not and how to fix it.

    It looks the packages up without importing them: importing torch takes seconds and
    hundreds of MB, too much for a page that only lists trainers.
    """
    missing = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
    if missing:
        return f"the peft trainer needs torch, transformers and peft ({', '.join(missing)} missing): {INSTALL_HINT}"
    return None


def train(
    config: TrainingConfig,
    dataset: str | Path,
    output_dir: Path,
    log: Callable[[int, dict[str, float]], None],
    should_stop: Callable[[], bool] = lambda: False,
    models_dir: Path | None = None,
) -> TrainResult:
    """LoRA-tune `config.base_model` on `dataset`, logging every step and eval, then save the adapter."""
    if reason := is_available():
        raise ValidationError(reason)
    os.environ["HF_HUB_OFFLINE"] = "1"  # a local folder only: never reach for the hub
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    model_dir = resolve_model(config.base_model, models_dir)
    examples = load_examples(dataset)
    tokenizer, model = _load(model_dir, config)
    rows = encode(tokenizer, examples, _max_length(model, tokenizer))
    if len(rows) < 2:
        raise DatasetError(
            f"{dataset} has {len(rows)} usable row(s); the peft trainer needs at least 2 to hold some out for eval"
        )
    train_rows, eval_rows = split(rows)
    latest: dict[str, float] = {}

    def record(step: int, values: dict[str, float]) -> None:
        latest.update(values)
        log(step, values)

    with tempfile.TemporaryDirectory(prefix="tunedeck-peft-") as scratch:
        steps = _fit(model, config, train_rows, eval_rows, Path(scratch), record, should_stop)
    model.save_pretrained(output_dir)
    return TrainResult(adapter_dir=output_dir, steps=steps, metrics=latest)


def resolve_model(name: str, models_dir: Path | None = None) -> Path:
    """An absolute folder as given; a relative one inside `models_dir`, which it may not escape."""
    root = (models_dir or DEFAULT_MODELS_DIR).resolve()
    path = Path(name).expanduser()
    if not path.is_absolute():
        path = (root / path).resolve()
        if not path.is_relative_to(root):
            raise ValidationError(f"base model {name!r} must be a folder inside {root} or an absolute path")
    if not (path / "config.json").is_file():
        raise ValidationError(
            f"base model {name!r}: no config.json in {path}; "
            "save a Hugging Face causal LM and its tokenizer there with save_pretrained"
        )
    return path


def load_examples(ref: str | Path) -> list[tuple[str, str]]:
    """(prompt, completion) pairs: from a `text` column (no prompt), or `prompt` + `completion`."""
    df = read_dataset(ref)
    columns = ["text"] if "text" in df.columns else ["prompt", "completion"]
    if not set(columns) <= set(df.columns):
        found = ", ".join(map(repr, df.columns)) or "none"
        raise DatasetError(f"{ref} needs a 'text' column, or 'prompt' and 'completion' columns; found columns: {found}")
    df = df.select(pl.col(columns).cast(pl.String))
    nulls = sum(df.null_count().row(0))
    if nulls:
        raise DatasetError(f"{ref} has empty cells in {', '.join(columns)} ({nulls} of them); fill or drop those rows")
    if columns == ["text"]:
        return [("", text) for text in df["text"].to_list()]
    return list(df.iter_rows())


def encode(tokenizer, examples: list[tuple[str, str]], max_length: int) -> list[dict[str, list[int]]]:
    """Token ids and labels per example; prompt tokens are masked so only the completion is learned."""
    rows = []
    for prompt, completion in examples:
        prompt_ids = tokenizer(prompt)["input_ids"] if prompt else []
        start = not prompt  # special tokens (a BOS) go once, at the front
        completion_ids = tokenizer(completion, add_special_tokens=start)["input_ids"] + _eos(tokenizer)
        ids = (prompt_ids + completion_ids)[:max_length]
        labels = ([IGNORE] * len(prompt_ids) + completion_ids)[:max_length]
        if any(label != IGNORE for label in labels[1:]):  # the first token is never predicted
            rows.append({"input_ids": ids, "labels": labels})
    return rows


def split(rows: list) -> tuple[list, list]:
    """Train and held-out rows, split the same way whatever the training seed."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(rows))
    n_eval = max(1, round(EVAL_FRACTION * len(rows)))
    return [rows[i] for i in sorted(order[n_eval:])], [rows[i] for i in sorted(order[:n_eval])]


def collate(rows: list[dict[str, list[int]]]) -> dict:
    """Right-pads a batch; padding is masked out of attention and loss, so its id does not matter."""
    import torch

    width = max(len(row["input_ids"]) for row in rows)

    def padded(key: str, fill: int) -> "torch.Tensor":
        return torch.tensor([row[key] + [fill] * (width - len(row[key])) for row in rows])

    mask = torch.tensor([[1] * len(row["input_ids"]) + [0] * (width - len(row["input_ids"])) for row in rows])
    return {"input_ids": padded("input_ids", 0), "attention_mask": mask, "labels": padded("labels", IGNORE)}


def lora_config(config: TrainingConfig):
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        task_type="CAUSAL_LM",
    )


def training_arguments(config: TrainingConfig, scratch: Path):
    """The Trainer's settings: CPU, every step logged, eval every `eval_interval`, no checkpoints."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(scratch),
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
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_pin_memory=False,
    )


def _load(model_dir: Path, config: TrainingConfig):
    """The tokenizer and the base model with fresh LoRA adapters on `target_modules`."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot load a causal LM and tokenizer from {model_dir}: {exc}") from exc
    try:
        return tokenizer, get_peft_model(model, lora_config(config))
    except ValueError as exc:
        raise ValidationError(f"cannot add LoRA to {config.base_model}: {exc}") from exc


def _fit(model, config, train_rows, eval_rows, scratch: Path, log, should_stop) -> int:
    """Runs the Trainer (which also evaluates after the last step); returns the steps taken."""
    from transformers import PrinterCallback, Trainer

    from core.integrations.huggingface import TuneDeckCallback

    if should_stop():
        raise TrainingStopped(1)
    callback = TuneDeckCallback(log=log, should_stop=should_stop)
    trainer = Trainer(
        model=model,
        args=training_arguments(config, scratch),
        train_dataset=train_rows,
        eval_dataset=eval_rows,
        data_collator=collate,
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)  # the callback logs metrics; the job log stays readable
    trainer.train()
    step = trainer.state.global_step
    if callback.stop_requested:
        raise TrainingStopped(step + 1)
    return step


def _max_length(model, tokenizer) -> int:
    context = getattr(model.config, "max_position_embeddings", None) or MAX_LENGTH
    return min(MAX_LENGTH, context, tokenizer.model_max_length)


def _eos(tokenizer) -> list[int]:
    return [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
