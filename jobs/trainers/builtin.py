"""The built-in trainer: a real LoRA fine-tune of a tiny text classifier, in numpy, in seconds on a CPU.

The frozen base (built by ``python -m scripts.make_sample_data``) hashes words and word pairs into
buckets, then runs fc1 -> ReLU -> fc2. Training adds PEFT-style adapters W + (alpha/r)·B·A to the
modules in ``target_modules`` and updates only A and B, with Adam and hand-written backprop.
"""

import difflib
import json
import math
import re
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice, pairwise
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl
from safetensors.numpy import load_file, save_file

from core import resources
from core.datasets import read_dataset, require_columns
from core.errors import DatasetError, ValidationError
from core.models import BUILTIN, BUILTIN_MODEL_TYPE, list_models
from core.presenters import plural
from core.run_params import parameter_counts, training_length
from core.sample_rows import label_row, sample_positions
from core.training_config import ALL_LINEAR, AUTO_MODULES, BUILTIN_MODULES, TrainingConfig
from jobs.trainers.base import LogParams, LogSamples, TrainingStopped, TrainResult, ignore_params, ignore_samples

MODEL_TYPE = BUILTIN_MODEL_TYPE
MODULES = BUILTIN_MODULES
DEFAULT_MODELS_DIR = resources.models_dir()  # the checkout's data/models, or the installed copy
BUILD_COMMAND = "python -m scripts.make_sample_data"
EVAL_FRACTION = 0.2
SPLIT_SEED = 1234  # fixed, so runs with different training seeds are scored on the same rows
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8
_TOKEN = re.compile(r"[a-z0-9']+")


class Adapter(NamedTuple):
    tensors: dict[str, np.ndarray]
    config: dict


@dataclass(frozen=True)
class TinyBase:
    """The frozen base model: its config.json and its weights as float64 arrays."""

    config: dict
    weights: dict[str, np.ndarray]

    @property
    def labels(self) -> list[str]:
        return self.config["labels"]

    def featurize(self, texts: Sequence[str]) -> np.ndarray:
        return featurize(texts, self.config["hash_buckets"])


@dataclass
class _Split:
    x: np.ndarray
    y: np.ndarray
    fc1_base: np.ndarray  # x @ W1.T + b1, computed once because W1 is frozen
    rows: np.ndarray | None = None  # the dataset's row numbers: the examples' IDs in samples
    texts: list[str] = field(default_factory=list)


def featurize(texts: Sequence[str], buckets: int) -> np.ndarray:
    """L2-normalised counts of lowercase words and word pairs, hashed (crc32) into `buckets` columns."""
    x = np.zeros((len(texts), buckets))
    for row, text in enumerate(texts):
        words = _TOKEN.findall(text.lower())
        for gram in words + [f"{a} {b}" for a, b in pairwise(words)]:
            x[row, zlib.crc32(gram.encode()) % buckets] += 1.0
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def load_base(name: str, models_dir: Path | None = None) -> TinyBase:
    path = base_model_path(name, models_dir)
    config = json.loads((path / "config.json").read_text())
    weights = {key: value.astype(np.float64) for key, value in load_file(path / "model.safetensors").items()}
    return TinyBase(config, weights)


def base_model_path(name: str, models_dir: Path | None = None) -> Path:
    """The folder of the base model `name`, or a ValidationError that says what is there instead."""
    root = (models_dir or DEFAULT_MODELS_DIR).resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise ValidationError(f"base model {name!r} must be a folder name inside {root}")
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        found = [model.name for model in list_models([root], BUILTIN)]  # its own kind only: not tiny-gpt2
        close = difflib.get_close_matches(name, found, n=1)
        if close:
            raise ValidationError(f"base model {name!r} not found; did you mean {close[0]!r}?")
        there = f"the models here are {', '.join(found)}" if found else "there are no models here yet"
        raise ValidationError(
            f"base model {name!r} not found in {root} ({there}); an administrator builds the sample ones with `{BUILD_COMMAND}`"
        )
    if json.loads((path / "config.json").read_text()).get("model_type") != MODEL_TYPE:
        raise ValidationError(f"{path} is not a {MODEL_TYPE} model, so the builtin trainer cannot tune it")
    return path


def train(
    config: TrainingConfig,
    dataset: str | Path,
    output_dir: Path,
    log: Callable[[int, dict[str, float]], None],
    should_stop: Callable[[], bool] = lambda: False,
    models_dir: Path | None = None,
    *,
    log_params: LogParams = ignore_params,
    checkpoint_dir: Path | None = None,
    resume_from: Path | None = None,
    log_samples: LogSamples = ignore_samples,
) -> TrainResult:
    """Fine-tune adapters on `dataset`, logging every step and eval (with `eval_samples` predictions), then save them.

    A run takes seconds, so it keeps no checkpoints (`checkpoint_dir` and `resume_from` go unused).
    """
    targets = _targets(config.target_modules)
    base = load_base(config.base_model, models_dir)
    train_set, eval_set = _load_splits(base, dataset)
    rng = np.random.default_rng(config.seed)
    model = _Tuned(base, _init_lora(base, config, targets, rng), config.lora_alpha / config.lora_rank)
    shown = sample_positions(len(eval_set.y), config.eval_samples or 0)
    baseline = model.evaluate(eval_set)  # B = 0: the frozen base's scores, logged at step 0
    log(0, baseline)
    _log_samples(log_samples, 0, model, eval_set, shown)
    adam = _Adam(model.params)
    total = _total_steps(config, len(train_set.y))
    log_params(_params(base, model, targets, total, math.ceil(len(train_set.y) / config.batch_size)))
    for step, rows in islice(enumerate(_batches(len(train_set.y), config.batch_size, rng), start=1), total):
        if should_stop():
            raise TrainingStopped(step)
        metrics = _train_step(model, adam, train_set, rows, config, _learning_rate(config, step, total), rng)
        log(step, metrics)
        if step % config.eval_interval == 0 or step == total:
            evals = model.evaluate(eval_set)
            log(step, evals)
            _log_samples(log_samples, step, model, eval_set, shown)
    _save_adapter(output_dir, config, base, model.params)
    frozen = {f"base_{key}": value for key, value in baseline.items()}
    return TrainResult(adapter_dir=output_dir, steps=total, metrics={**metrics, **evals, **frozen})


def _log_samples(log_samples: LogSamples, step: int, model: "_Tuned", data: _Split, shown: list[int]) -> None:
    if not shown:
        return
    answers = model.classify(data.x[shown], data.fc1_base[shown])
    labels = model.base.labels
    rows = [
        label_row(int(data.rows[at]), data.texts[at], labels[data.y[at]], label, confidence)
        for at, (label, confidence) in zip(shown, answers, strict=True)
    ]
    log_samples(step, rows)


def load_tuned(adapter_dir: Path, models_dir: Path | None = None) -> "_Tuned":
    """The base model with a saved adapter applied, ready to classify new text (the try-it box)."""
    adapter = load_adapter(adapter_dir)
    base = load_base(adapter.config["base_model_name_or_path"], models_dir)
    prefix, suffix = "base_model.model.", ".weight"
    params = {name.removeprefix(prefix).removesuffix(suffix): value.astype(np.float64) for name, value in adapter.tensors.items()}
    return _Tuned(base, params, adapter.config["lora_alpha"] / adapter.config["r"])


def load_adapter(adapter_dir: Path) -> Adapter:
    """The tensors and adapter_config.json that `train` wrote."""
    weights, config = adapter_dir / "adapter_model.safetensors", adapter_dir / "adapter_config.json"
    if not weights.is_file() or not config.is_file():
        raise ValidationError(f"no adapter in {adapter_dir}: expected adapter_model.safetensors and adapter_config.json")
    return Adapter(load_file(weights), json.loads(config.read_text()))


def _targets(targets: list[str]) -> list[str]:
    """The modules to adapt: every one of them for 'all-linear' or 'auto' (both layers are linear). TrainingConfig
    refused any other name before the run was queued."""
    if targets in ([ALL_LINEAR], [AUTO_MODULES]):
        return list(MODULES)
    return sorted(set(targets))


def _params(base: TinyBase, model: "_Tuned", targets: list[str], total: int, steps_per_epoch: int) -> dict:
    trainable = sum(value.size for value in model.params.values())
    frozen = sum(value.size for value in base.weights.values())
    counts = parameter_counts(trainable, trainable + frozen)
    return {"lora_target_modules": targets, **counts, **training_length(total, steps_per_epoch)}


def _load_splits(base: TinyBase, ref: str | Path) -> tuple[_Split, _Split]:
    df = read_dataset(ref)
    require_columns(df, ref, ["text", "label"])
    if df.height < 2:
        raise DatasetError(f"{ref} has {plural(df.height, 'row')}; the builtin trainer needs at least 2 to hold some out for eval")
    nulls = df.select(pl.col("text", "label").null_count()).row(0)
    if any(nulls):
        raise DatasetError(f"{ref} has empty cells in text or label ({sum(nulls)} of them); fill or drop those rows")
    texts = df["text"].cast(pl.String).to_list()
    x = base.featurize(texts)
    y = _encode_labels(df["label"], base.labels, ref)
    order = np.random.default_rng(SPLIT_SEED).permutation(df.height)
    n_eval = max(1, round(EVAL_FRACTION * df.height))
    return _split(base, x, y, order[n_eval:], texts), _split(base, x, y, order[:n_eval], texts)


def _split(base: TinyBase, x: np.ndarray, y: np.ndarray, rows: np.ndarray, texts: list[str]) -> _Split:
    rows = np.sort(rows)
    fc1_base = x[rows] @ base.weights["fc1.weight"].T + base.weights["fc1.bias"]
    return _Split(x[rows], y[rows], fc1_base, rows, [texts[row] for row in rows])


def _encode_labels(labels: pl.Series, names: list[str], ref: str | Path) -> np.ndarray:
    """Class indices from int labels (0..n-1) or from class names; the base's head fixes the classes."""
    if labels.dtype.is_integer():
        values = labels.to_numpy()
        if values.min() < 0 or values.max() >= len(names):
            raise DatasetError(f"{ref} has integer labels outside 0..{len(names) - 1} ({', '.join(names)})")
        return values.astype(np.int64)
    if labels.dtype != pl.String:
        raise DatasetError(f"{ref} column 'label' is {labels.dtype}; use class names ({', '.join(names)}) or their indices")
    unknown = sorted(set(labels.unique().to_list()) - set(names))
    if unknown:
        raise DatasetError(f"{ref} has labels {', '.join(unknown[:5])} that the base model does not know; use {', '.join(names)}")
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[label] for label in labels.to_list()], dtype=np.int64)


def _init_lora(base: TinyBase, config: TrainingConfig, targets: list[str], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A ~ U(±1/sqrt(fan_in)) like PEFT's default and B = 0, so training starts exactly at the base."""
    params = {}
    for name in targets:
        out_dim, in_dim = base.weights[f"{name}.weight"].shape
        bound = 1.0 / math.sqrt(in_dim)
        params[f"{name}.lora_A"] = rng.uniform(-bound, bound, (config.lora_rank, in_dim))
        params[f"{name}.lora_B"] = np.zeros((out_dim, config.lora_rank))
    return params


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Row indices, reshuffled every epoch, for as long as the caller keeps asking."""
    while True:
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]


def _total_steps(config: TrainingConfig, n_train: int) -> int:
    return config.max_steps or config.epochs * math.ceil(n_train / config.batch_size)


def _learning_rate(config: TrainingConfig, step: int, total: int) -> float:
    """Linear warmup to the peak, then the schedule decays towards (never to) zero by the last step."""
    peak, warmup = config.learning_rate, config.warmup_steps
    if step <= warmup:
        return peak * step / warmup
    progress = (step - warmup - 1) / max(1, total - warmup)
    if config.lr_schedule == "linear":
        return peak * (1.0 - progress)
    if config.lr_schedule == "cosine":
        return peak * 0.5 * (1.0 + math.cos(math.pi * progress))
    return peak


def _train_step(
    model: "_Tuned", adam: "_Adam", data: _Split, rows: np.ndarray, config: TrainingConfig, lr: float, rng: np.random.Generator
) -> dict[str, float]:
    started = time.perf_counter()
    loss, grads = model.loss_and_grads(data, rows, config.lora_dropout, rng)
    adam.step(model.params, grads, lr)
    elapsed = max(time.perf_counter() - started, 1e-9)
    grad_norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
    return {"loss": loss, "learning_rate": lr, "grad_norm": grad_norm, "samples_per_second": len(rows) / elapsed}


@dataclass
class _Tuned:
    """The frozen base plus the trainable adapters, with forward and backward passes written out."""

    base: TinyBase
    params: dict[str, np.ndarray]
    scale: float

    def evaluate(self, data: _Split) -> dict[str, float]:
        logits, _ = self.forward(data.x, data.fc1_base, {})
        loss, _ = _cross_entropy(logits, data.y)
        return {"eval_loss": loss, "eval_accuracy": float((logits.argmax(axis=1) == data.y).mean())}

    def classify(self, x: np.ndarray, fc1_base: np.ndarray) -> list[tuple[str, float]]:
        """Each row's predicted label and the probability the model gives it."""
        logits, _ = self.forward(x, fc1_base, {})
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = shifted / shifted.sum(axis=1, keepdims=True)
        return [(self.base.labels[i], float(p[i])) for i, p in zip(probs.argmax(axis=1), probs, strict=True)]

    def answer(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """Labels and confidences for new texts."""
        x = self.base.featurize(texts)
        return self.classify(x, x @ self.base.weights["fc1.weight"].T + self.base.weights["fc1.bias"])

    def forward(self, x: np.ndarray, fc1_base: np.ndarray, keeps: dict) -> tuple[np.ndarray, dict]:
        caches: dict = {}
        z1 = fc1_base
        if "fc1.lora_A" in self.params:
            delta, caches["fc1"] = self._lora("fc1", x, keeps.get("fc1"))
            z1 = z1 + delta
        caches["h"] = h = np.maximum(z1, 0.0)
        logits = h @ self.base.weights["fc2.weight"].T + self.base.weights["fc2.bias"]
        if "fc2.lora_A" in self.params:
            delta, caches["fc2"] = self._lora("fc2", h, keeps.get("fc2"))
            logits = logits + delta
        return logits, caches

    def loss_and_grads(self, data: _Split, rows: np.ndarray, dropout: float, rng: np.random.Generator) -> tuple[float, dict]:
        keeps = {name: _dropout_keep(rng, dropout, (len(rows), self.params[f"{name}.lora_A"].shape[1])) for name in self.targets}
        logits, caches = self.forward(data.x[rows], data.fc1_base[rows], keeps)
        loss, g = _cross_entropy(logits, data.y[rows])
        grads: dict[str, np.ndarray] = {}
        dh = g @ self.base.weights["fc2.weight"]
        if "fc2" in caches:
            dh = dh + self._lora_backward("fc2", g, caches["fc2"], grads)
        if "fc1" in caches:
            self._lora_backward("fc1", dh * (caches["h"] > 0), caches["fc1"], grads)
        return loss, grads

    @property
    def targets(self) -> list[str]:
        return [name for name in MODULES if f"{name}.lora_A" in self.params]

    def _lora(self, name: str, x: np.ndarray, keep: np.ndarray | None) -> tuple[np.ndarray, tuple]:
        """The adapter path (alpha/r)·B·A·dropout(x), and what its backward pass needs."""
        xd = x if keep is None else x * keep
        u = xd @ self.params[f"{name}.lora_A"].T
        return self.scale * u @ self.params[f"{name}.lora_B"].T, (xd, u, keep)

    def _lora_backward(self, name: str, g: np.ndarray, cache: tuple, grads: dict) -> np.ndarray:
        """Fills grads for A and B; returns the gradient with respect to the adapter's input."""
        xd, u, keep = cache
        du = self.scale * g @ self.params[f"{name}.lora_B"]
        grads[f"{name}.lora_A"] = du.T @ xd
        grads[f"{name}.lora_B"] = self.scale * g.T @ u
        dx = du @ self.params[f"{name}.lora_A"]
        return dx if keep is None else dx * keep


def _dropout_keep(rng: np.random.Generator, p: float, shape: tuple[int, int]) -> np.ndarray | None:
    """Inverted-dropout multipliers (0 or 1/(1-p)); None when dropout is off."""
    if p == 0:
        return None
    return (rng.random(shape) >= p) / (1.0 - p)


def _cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean loss and its gradient with respect to the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    picked = np.arange(len(y)), y
    g = np.exp(log_probs)
    g[picked] -= 1.0
    return float(-log_probs[picked].mean()), g / len(y)


class _Adam:
    """Adam (Kingma & Ba) with bias correction; state lives beside the parameters it updates."""

    def __init__(self, params: dict[str, np.ndarray]):
        self.t = 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float) -> None:
        self.t += 1
        b1, b2 = ADAM_BETAS
        for k, g in grads.items():
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            m_hat, v_hat = self.m[k] / (1 - b1**self.t), self.v[k] / (1 - b2**self.t)
            params[k] -= lr * m_hat / (np.sqrt(v_hat) + ADAM_EPS)


def _save_adapter(output_dir: Path, config: TrainingConfig, base: TinyBase, params: dict[str, np.ndarray]) -> None:
    """PEFT's file layout and tensor names, so the adapter reads like one from the Hugging Face stack."""
    output_dir.mkdir(parents=True, exist_ok=True)
    tensors = {f"base_model.model.{k}.weight": v.astype(np.float32) for k, v in params.items()}
    save_file(tensors, output_dir / "adapter_model.safetensors")
    adapter_config = {
        "peft_type": "LORA",
        "task_type": "SEQ_CLS",
        "r": config.lora_rank,
        "lora_alpha": config.lora_alpha,
        "lora_dropout": config.lora_dropout,
        "target_modules": sorted(name.removesuffix(".lora_A") for name in params if name.endswith(".lora_A")),
        "base_model_name_or_path": config.base_model,
        "bias": "none",
        "inference_mode": True,
        "labels": base.labels,
        "tunedeck_trainer": "builtin",
    }
    (output_dir / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2) + "\n")
