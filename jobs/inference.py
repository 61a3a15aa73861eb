"""A registered adapter's answer to new input: its base model with the adapter applied (the try-it box).

The builtin trainer's numpy classifier answers at once; a PEFT adapter loads torch and its base model
(seconds on a CPU for the shipped tiny-gpt2), so callers keep the loaded answerer (the page caches
one per adapter per server) and bound the wait with `answer_within`.
"""

import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from core.errors import TuneDeckError, ValidationError
from core.integrations import hf_samples
from core.models import model_roots, resolve_model
from core.settings import get_settings
from jobs.trainers import builtin, peft_trainer

ANSWER_TIMEOUT = 60.0  # seconds an answer may take: a small model on a busy CPU needs a few
MEMORY_SHORT_PERCENT = 90.0  # above this share of the machine's memory in use, loaded adapters are released
MAX_INPUT = 2_000  # characters of input the try-it box takes
MAX_ANSWERING = 2  # answers worked out at once in one process (an app server)
_answering = threading.BoundedSemaphore(MAX_ANSWERING)


@dataclass(frozen=True)
class Answer:
    text: str
    confidence: float | None = None  # a classifier's probability for its label
    settings: dict[str, Any] = field(default_factory=dict)  # the decoding settings of a generation


Answerer = Callable[[str], Answer]


def load_answerer(adapter_path: str, base_model: str) -> Answerer:
    """The adapter at `adapter_path` on its base model, ready to answer; ValidationError says why it cannot."""
    folder = Path(adapter_path)
    if _kind(folder, base_model) == "builtin":
        tuned = builtin.load_tuned(folder)
        return lambda text: _labelled(*tuned.answer([text])[0])
    return _peft_answerer(folder, base_model)


def cannot_answer(adapter_path: str, base_model: str) -> str | None:
    """Why this adapter cannot answer here, found without loading it (None: it can), so the try-it box is offered
    only for adapters that can."""
    try:
        _kind(Path(adapter_path), base_model)
    except ValidationError as error:
        return str(error)
    return None


def _kind(folder: Path, base_model: str) -> str:
    """builtin (the built-in trainer's classifier) or peft (a PEFT adapter on a base model found here)."""
    config_file = folder / "adapter_config.json"
    try:
        found = config_file.is_file()
    except OSError as error:  # a folder another machine wrote, unreadable here; a stale network mount
        raise ValidationError(f"cannot read the adapter at {folder} ({error.strerror or error})") from None
    if not found:
        raise ValidationError(f"no adapter at {folder} (adapter_config.json is missing); was the folder moved or deleted?")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValidationError(f"cannot read {config_file} ({error})") from None
    if isinstance(config, dict) and config.get("tunedeck_trainer") == "builtin":
        return "builtin"
    roots = model_roots(get_settings().models_dir)
    try:
        resolve_model(base_model, roots)
    except ValidationError:
        where = " or ".join(str(root) for root in roots)
        raise ValidationError(
            f"the base model {base_model} is not a Hugging Face model in {where}: the try-it box answers with the "
            "built-in trainer's adapters, and with PEFT adapters whose base model is there"
        ) from None
    if reason := peft_trainer.is_available():
        raise ValidationError(f"this adapter needs the training packages to answer: {reason}")
    return "peft"


def answer_within(answerer: Answerer, text: str, seconds: float = ANSWER_TIMEOUT) -> Answer:
    """The answer, or an error when it takes longer than `seconds` (the work is left to finish in the background).
    At most MAX_ANSWERING answers are worked out at once in this process, those left to finish included: retries of
    a slow answer must not pile up model runs in the app's server."""
    text = check_input(text)
    if not _answering.acquire(blocking=False):
        raise TuneDeckError(
            "the adapters are still working out earlier answers (one that took too long finishes in the background); "
            "try again in a moment"
        )
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunedeck-try-it")
    try:
        future = pool.submit(answerer, text)
    except BaseException:
        _answering.release()
        raise
    future.add_done_callback(lambda _: _answering.release())
    try:
        return future.result(timeout=seconds)
    except FutureTimeout:
        raise TuneDeckError(f"the adapter took longer than {seconds:g} s to answer; try a shorter input or try again") from None
    finally:
        pool.shutdown(wait=False)


def check_input(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("type some input for the adapter to answer")
    if len(text) > MAX_INPUT:
        raise ValidationError(f"the input is too long: at most {MAX_INPUT:,} characters, and this one has {len(text):,}")
    return text


def memory_short(threshold: float = MEMORY_SHORT_PERCENT) -> bool:
    """Whether the machine is short of memory: time to release loaded adapters before loading another."""
    return psutil.virtual_memory().percent >= threshold


def _labelled(label: str, confidence: float) -> Answer:
    return Answer(label, confidence)


def _peft_answerer(folder: Path, base_model: str) -> Answerer:
    from peft import PeftModel

    os.environ["HF_HUB_OFFLINE"] = "1"  # a local folder only: never reach for the hub
    model_dir = resolve_model(base_model, model_roots(get_settings().models_dir))
    task = _task(folder)
    tokenizer = peft_trainer.load_tokenizer(model_dir)
    labels = task.get("labels") if task.get("task") == "classification" else None
    model = PeftModel.from_pretrained(peft_trainer.load_base(model_dir, tokenizer, labels), folder).eval()
    if labels:
        return lambda text: _labelled(*_no_grad(lambda: hf_samples.classify(model, tokenizer, text)))
    settings = hf_samples.decoding()
    return lambda text: Answer(_no_grad(lambda: hf_samples.generate(model, tokenizer, text)), settings=settings)


def _task(folder: Path) -> dict:
    path = folder / peft_trainer.TASK_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"task": "causal-lm"}


def _no_grad(compute: Callable[[], Any]) -> Any:
    import torch

    with torch.no_grad():
        return compute()
