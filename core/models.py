"""Base models on this machine: the folders a run's `base_model` may name, and what kind each is.

A name is looked up in the data directory's `models` folder, then in the project's `data/models`
(the shipped tiny-base and tiny-gpt2); an absolute path is used as is. Nothing is downloaded.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from core import resources
from core.errors import ValidationError, quoted

SHIPPED_MODELS = resources.models_dir().resolve()  # the checkout's data/models, or the installed wheel's copy
BUILTIN_MODEL_TYPE = "tunedeck-tiny-text"  # the builtin trainer's numpy classifier
HUGGING_FACE, BUILTIN = "huggingface", "builtin"
TRAINER_MODEL_KIND = {"builtin": BUILTIN, "peft": HUGGING_FACE}  # which models each trainer can tune


@dataclass(frozen=True)
class LocalModel:
    name: str
    path: Path
    kind: str  # HUGGING_FACE or BUILTIN: which trainer can tune it


def model_roots(models_dir: Path | None = None) -> list[Path]:
    """Where names are looked up, first match wins: `models_dir` (the data dir's), then the shipped models."""
    roots = [models_dir.resolve()] if models_dir else []
    return list(dict.fromkeys([*roots, SHIPPED_MODELS]))


def list_models(roots: list[Path], kind: str | None = None) -> list[LocalModel]:
    """Every model folder (one with a config.json) in the roots, by name; the first root wins a clash."""
    found: dict[str, LocalModel] = {}
    for root in roots:
        for folder in sorted(root.iterdir()) if root.is_dir() else []:
            model_kind = _kind(folder)
            if model_kind and folder.name not in found:
                found[folder.name] = LocalModel(folder.name, folder, model_kind)
    return [model for model in found.values() if kind is None or model.kind == kind]


def resolve_model(name: str, roots: list[Path], kind: str = HUGGING_FACE) -> Path:
    """The folder `name` means, or an error that names base_model and says what to give instead."""
    path = _locate(name, roots, kind)
    found = _kind(path)
    if found is None:
        raise ValidationError(
            f"base_model: {path} is not a Hugging Face model (it has no config.json); give a folder that "
            f"save_pretrained wrote, or one of the models found: {_names(roots, kind)}"
        )
    if found != kind:
        what = "the builtin trainer's numpy classifier" if found == BUILTIN else "a Hugging Face model"
        raise ValidationError(f"base_model: {name} is {what}, which this trainer cannot tune; use one of: {_names(roots, kind)}")
    return path


def _locate(name: str, roots: list[Path], kind: str) -> Path:
    path = Path(name).expanduser()
    if path.is_absolute():
        return path
    for root in roots:
        candidate = (root / path).resolve()
        if not candidate.is_relative_to(root.resolve()):
            raise ValidationError(f"base_model: {quoted(name)} must be a folder inside {root} or an absolute path")
        if candidate.is_dir():
            return candidate
    where = " or ".join(str(root) for root in roots)
    raise ValidationError(
        f"base_model: no model named {quoted(name)} in {where}; give the path of a model folder, or one of: {_names(roots, kind)}"
    )


def _kind(folder: Path) -> str | None:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    return BUILTIN if config.get("model_type") == BUILTIN_MODEL_TYPE else HUGGING_FACE


def _names(roots: list[Path], kind: str) -> str:
    return ", ".join(model.name for model in list_models(roots, kind)) or "none yet"
