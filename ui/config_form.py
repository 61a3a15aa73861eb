"""The new-run form: a trainer picker, then one widget per setting that trainer reads, with its defaults.

Widgets are keyed by trainer, so switching trainer shows that trainer's own settings and defaults
(the builtin's fc1/fc2 never linger in a peft run). The picker sits outside the `st.form`, because
widgets inside a form do not rerun the page when they change.
"""

import types
import typing
from typing import Any

import streamlit as st

from core.commands import load_commands
from core.models import TRAINER_MODEL_KIND, list_models, model_roots
from core.settings import get_settings
from core.training_config import TrainingConfig, defaults_for, fields_for
from core.validation import BOUND_WORDS, as_typed, bound_text
from jobs.trainers import available_trainers
from ui.common import capitalized, field_label, plain, sentence

FORM_EPOCHS = {"builtin": 3, "peft": 1}  # a first run that finishes soon: 3 s builtin, about 150 steps peft


@st.cache_data(ttl=600, show_spinner=False)
def _trainers() -> dict[str, str | None]:
    """Which trainers can run here (checking means importing torch, so not on every rerun)."""
    return available_trainers()


def trainer_choice(prefix: str = "cfg", initial: str | None = None) -> str:
    """The trainer picker; put it above the form so a change redraws the form's settings."""
    trainers = _trainers()
    chosen = st.selectbox(
        "Trainer",
        list(trainers),
        index=list(trainers).index(initial) if initial in trainers else 0,
        key=f"{prefix}_trainer",
        format_func=lambda t: t if trainers[t] is None else f"{t} (unavailable)",
        help=TrainingConfig.model_fields["trainer"].description,
    )
    if trainers[chosen]:
        st.caption(plain(sentence(trainers[chosen])) + (" Start stays off until then." if cannot_start(chosen) else ""))
    return chosen


def cannot_start(trainer: str) -> bool:
    """Whether this machine's workers could not run `trainer` (its packages are missing here): the form does not start
    a run that would fail at once. In team mode workers on other machines decide, so the form starts it."""
    return _trainers().get(trainer) is not None and not get_settings().team_mode


def config_inputs(trainer: str, prefix: str = "cfg", columns: int = 3, initial: dict[str, Any] | None = None) -> dict[str, Any]:
    """One widget per setting `trainer` reads, starting at `initial` (a cloned run's settings) or the defaults;
    returns the raw values for validation by the model. Give each `initial` its own prefix: widgets keep their
    state by key."""
    initial = initial or {}
    length_given = "epochs" in initial or "max_steps" in initial  # a cloned run keeps how long it trained
    first_run = {"epochs": FORM_EPOCHS[trainer]} if trainer in FORM_EPOCHS and not length_given else {}
    defaults = defaults_for(trainer) | first_run | initial
    values: dict[str, Any] = {"trainer": trainer}
    grid = st.columns(columns)
    for index, name in enumerate(fields_for(trainer)):
        with grid[index % columns]:
            values[name] = _widget(name, defaults.get(name), f"{prefix}_{trainer}_{name}", trainer)
    return values


def _widget(name: str, default: Any, key: str, trainer: str) -> Any:
    info = TrainingConfig.model_fields[name]
    label, help_text = capitalized(field_label(name)), info.description  # "Learning rate", as the page's other labels
    if name == "command":
        return _command_widget(label, key, default)
    if name == "base_model" and trainer in TRAINER_MODEL_KIND:
        return _model_widget(label, trainer, default, key, help_text)
    base = _base_type(info.annotation)
    if typing.get_origin(base) is typing.Literal:
        options = list(typing.get_args(base)) if default is not None else [None, *typing.get_args(base)]
        return st.selectbox(
            label, options, index=options.index(default), key=key, help=help_text, format_func=lambda o: "(not set)" if o is None else o
        )
    # Numbers are typed as text and checked by the config, which names the field and what it allows. A number input
    # changed what was typed without a word: 1.5 in a whole-number field became 1, and a number the browser cannot
    # hold (1e400, or a whole number past 2^53) went back to the last value, so the run started with another config.
    if base in (int, float):
        empty = defaults_for(trainer).get(name)  # what the trainer takes when the field is cleared: said, not silent
        left_empty = f"Left empty: {as_typed(empty)}, the trainer's default." if empty is not None else "Left empty: not set."
        said = " ".join(part.strip() for part in (help_text or "", allowed(info.metadata), left_empty) if part.strip())
        text = st.text_input(label, value=as_typed(default), key=key, help=said)
        return text.strip() or None
    if typing.get_origin(base) is list:
        text = st.text_input(
            label, value=", ".join(default or []), key=key, help=f"{help_text} Comma separated; left empty, the trainer's default."
        )
        return [part.strip() for part in text.split(",") if part.strip()] or None
    return st.text_input(label, value=default or "", key=key, help=help_text).strip() or None


def allowed(metadata: list) -> str:
    """' Allowed: at least 1 and at most 10,000.': a number field's bounds, from its Pydantic constraints."""
    said = [f"{words} {bound_text(getattr(item, bound))}" for item in metadata for bound, words in BOUND_WORDS.items() if hasattr(item, bound)]
    return f" Allowed: {' and '.join(said)}." if said else ""


def _base_type(annotation: Any) -> Any:
    """`int` for `int | None`, the Literal for `Literal[...] | None`, the list type for `list[...] | None`."""
    args = typing.get_args(annotation)
    if type(None) in args or isinstance(annotation, types.UnionType):
        return next((arg for arg in args if arg is not type(None)), annotation)
    return annotation


def _model_widget(label: str, trainer: str, default: str, key: str, help_text: str | None) -> str | None:
    """The models found for this trainer; typing a path of any model folder works too."""
    found = [model.name for model in list_models(model_roots(get_settings().models_dir), TRAINER_MODEL_KIND[trainer])]
    options = list(dict.fromkeys([default, *found]))
    return st.selectbox(label, options, key=key, help=f"{help_text} Type a path to use another.", accept_new_options=True)


def _command_widget(label: str, key: str, default: str | None) -> str | None:
    commands = sorted(load_commands(get_settings()))
    return st.selectbox(
        label,
        commands,
        index=commands.index(default) if default in commands else 0 if commands else None,
        key=key,
        placeholder="none registered",
        help="Registered by the administrator in commands.toml",
    )
