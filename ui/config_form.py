"""The new-run form, built from the TrainingConfig model so a new field appears without page changes."""

import types
import typing
from typing import Any

import streamlit as st
from pydantic.fields import FieldInfo

from core.commands import load_commands
from core.presenters import config_fields
from core.settings import get_settings
from core.training_config import TrainingConfig
from jobs.trainers import available_trainers

DEFAULTS = TrainingConfig(epochs=3)


def _bounds(info: FieldInfo, kind: type) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    for rule in info.metadata:
        if getattr(rule, "ge", None) is not None:
            bounds["min_value"] = kind(rule.ge)
        if getattr(rule, "le", None) is not None:
            bounds["max_value"] = kind(rule.le)
    return bounds


@st.cache_data(ttl=600, show_spinner=False)
def _trainers() -> dict[str, str | None]:
    """Which trainers can run here (checking means importing torch, so not on every rerun)."""
    return available_trainers()


def _choice_widget(name: str, key: str) -> Any:
    if name == "trainer":
        trainers = _trainers()
        chosen = st.selectbox(
            "trainer", list(trainers), key=key, format_func=lambda t: t if trainers[t] is None else f"{t} (unavailable)"
        )
        if trainers[chosen]:
            st.caption(trainers[chosen])
        return chosen
    commands = [None, *sorted(load_commands(get_settings()))]
    return st.selectbox(
        "command",
        commands,
        key=key,
        format_func=lambda c: "none" if c is None else c,
        help="Registered by the administrator; used with trainer 'command'",
    )


def _widget(name: str, info: FieldInfo, key: str) -> Any:
    if name in ("trainer", "command"):
        return _choice_widget(name, key)
    label = name.replace("_", " ")
    default = getattr(DEFAULTS, name)
    annotation = info.annotation
    args = typing.get_args(annotation)
    optional = type(None) in args
    base = (
        next((arg for arg in args if arg is not type(None)), annotation)
        if optional or isinstance(annotation, types.UnionType)
        else annotation
    )
    help_text = info.description
    if typing.get_origin(base) is typing.Literal:
        options = list(typing.get_args(base))
        return st.selectbox(label, options, index=options.index(default), key=key, help=help_text)
    if base is int:
        return st.number_input(label, value=default, step=1, key=key, help=help_text, **_bounds(info, int))
    if base is float:
        return st.number_input(label, value=float(default), format="%g", key=key, help=help_text, **_bounds(info, float))
    if typing.get_origin(base) is list:
        text = st.text_input(label, value=", ".join(default), key=key, help="Comma separated")
        return [part.strip() for part in text.split(",") if part.strip()]
    return st.text_input(label, value=str(default), key=key, help=help_text)


def config_inputs(prefix: str = "cfg", columns: int = 3) -> dict[str, Any]:
    """One widget per config field; returns the raw values for validation by the model."""
    values = {}
    grid = st.columns(columns)
    for index, (name, info) in enumerate(config_fields().items()):
        with grid[index % columns]:
            values[name] = _widget(name, info, f"{prefix}_{name}")
    return values
