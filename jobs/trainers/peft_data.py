"""Rows for the peft trainer: token ids and labels for a causal LM or a sequence classifier.

A causal LM learns `text` (or `completion` after `prompt`: the prompt is masked out of the loss);
a classifier learns `label` from `text`. Both are split the builtin trainer's way, so runs of
either trainer are scored on the same held-out rows.
"""

import numpy as np
import polars as pl

from core.datasets import read_dataset, require_columns
from core.errors import DatasetError
from core.presenters import plural
from jobs.trainers.builtin import EVAL_FRACTION, SPLIT_SEED

IGNORE = -100  # the label PyTorch's cross-entropy skips: prompt and padding tokens
Row = dict[str, list[int] | int]  # input_ids, labels, and `example`: the dataset row it came from


def load_examples(ref) -> list[tuple[str, str]]:
    """(prompt, completion) pairs: from a `text` column (no prompt), or `prompt` + `completion`."""
    df = read_dataset(ref)
    columns = ["text"] if "text" in df.columns else ["prompt", "completion"]
    if not set(columns) <= set(df.columns):
        found = ", ".join(map(repr, df.columns)) or "none"
        raise DatasetError(f"{ref} needs a 'text' column, or 'prompt' and 'completion' columns; found columns: {found}")
    df = _no_nulls(df.select(pl.col(columns).cast(pl.String)), ref)
    if columns == ["text"]:
        return [("", text) for text in df["text"].to_list()]
    return list(df.iter_rows())


def load_labelled(ref) -> tuple[list[str], list[str | int]]:
    """Texts and their labels, for the classification task."""
    df = read_dataset(ref)
    require_columns(df, ref, ["text", "label"])
    df = _no_nulls(df.select("text", "label"), ref)
    return df["text"].cast(pl.String).to_list(), df["label"].to_list()


def label_names(labels: list[str | int]) -> list[str]:
    """The classes in a stable order: integer labels 0..n-1 as given, names sorted."""
    if all(isinstance(label, int) for label in labels):
        if min(labels) < 0:
            raise DatasetError("integer labels must be 0 or more (class indices)")
        return [str(index) for index in range(max(labels) + 1)]
    return sorted({str(label) for label in labels})


def encode(tokenizer, examples: list[tuple[str, str]], max_length: int) -> list[Row]:
    """Token ids and labels per example; prompt tokens are masked so only the completion is learned."""
    rows = []
    for example, (prompt, completion) in enumerate(examples):
        prompt_ids = tokenizer(prompt)["input_ids"] if prompt else []
        start = not prompt  # special tokens (a BOS) go once, at the front
        completion_ids = tokenizer(completion, add_special_tokens=start)["input_ids"] + _eos(tokenizer)
        ids = (prompt_ids + completion_ids)[:max_length]
        labels = ([IGNORE] * len(prompt_ids) + completion_ids)[:max_length]
        if any(label != IGNORE for label in labels[1:]):  # the first token is never predicted
            rows.append({"input_ids": ids, "labels": labels, "example": example})
    return rows


def encode_labelled(tokenizer, texts: list[str], labels: list, classes: list[str], max_length: int) -> list[Row]:
    index = {name: i for i, name in enumerate(classes)}
    ids = [tokenizer(text, truncation=True, max_length=max_length)["input_ids"] for text in texts]
    return [
        {"input_ids": row, "labels": index[str(label)], "example": example}
        for example, (row, label) in enumerate(zip(ids, labels, strict=True))
        if row
    ]


def split(rows: list) -> tuple[list, list]:
    """Train and held-out rows, split the same way whatever the training seed."""
    if len(rows) < 2:
        raise DatasetError(f"the dataset has {plural(len(rows), 'usable row')}; the peft trainer needs at least 2 to hold some out")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(rows))
    n_eval = max(1, round(EVAL_FRACTION * len(rows)))
    return [rows[i] for i in sorted(order[n_eval:])], [rows[i] for i in sorted(order[:n_eval])]


def collator(pad_id: int):
    """Right-pads a batch with `pad_id`; padding is masked out of attention and of a causal LM's loss."""
    import torch

    def collate(rows: list[Row]) -> dict:
        width = max(len(row["input_ids"]) for row in rows)

        def padded(key: str, fill: int) -> "torch.Tensor":
            return torch.tensor([row[key] + [fill] * (width - len(row[key])) for row in rows])

        mask = torch.tensor([[1] * len(row["input_ids"]) + [0] * (width - len(row["input_ids"])) for row in rows])
        labels = (
            padded("labels", IGNORE) if isinstance(rows[0]["labels"], list) else torch.tensor([row["labels"] for row in rows])
        )
        return {"input_ids": padded("input_ids", pad_id), "attention_mask": mask, "labels": labels}

    return collate


def accuracy(prediction) -> dict[str, float]:
    """The Trainer's compute_metrics for classification: reported as eval_accuracy."""
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    return {"accuracy": float((np.asarray(logits).argmax(axis=-1) == np.asarray(prediction.label_ids)).mean())}


def _no_nulls(df: pl.DataFrame, ref) -> pl.DataFrame:
    nulls = sum(df.null_count().row(0))
    if nulls:
        raise DatasetError(f"{ref} has empty cells in {', '.join(df.columns)} ({nulls} of them); fill or drop those rows")
    return df


def _eos(tokenizer) -> list[int]:
    return [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
