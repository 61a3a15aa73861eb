"""The new-run form, built from the TrainingConfig model so a new field appears without page changes."""

import types
import typing
from typing import Any

import streamlit as st
from pydantic.fields import FieldInfo

from core.presenters import config_fields
from core.training_config import TrainingConfig

DEFAULTS = TrainingConfig(epochs=3)


def _bounds(info: FieldInfo, kind: type) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    for rule in info.metadata:
        if getattr(rule, "ge", None) is not None:
            bounds["min_value"] = kind(rule.ge)
        if getattr(rule, "le", None) is not None:
            bounds["max_value"] = kind(rule.le)
    return bounds


def _widget(name: str, info: FieldInfo, key: str) -> Any:
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
