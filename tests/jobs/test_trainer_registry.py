"""Trainers are picked by name; one whose packages are missing is listed as unavailable, never a crash."""

import importlib.util

import pytest

from core.errors import ValidationError
from jobs import trainers


def test_every_trainer_is_listed_with_its_availability():
    listed = trainers.available_trainers()

    assert set(listed) == {"builtin", "peft", "command"}
    assert listed["builtin"] is None and listed["command"] is None


def test_a_trainer_without_its_packages_is_unavailable_with_an_install_hint(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real_find_spec(name, *a))

    reason = trainers.available_trainers()["peft"]

    assert "peft missing" in reason and "pip install -r requirements-train.txt" in reason
    with pytest.raises(ValidationError, match="the peft trainer is unavailable here"):
        trainers.get_trainer("peft")


def test_an_unknown_trainer_names_the_known_ones():
    with pytest.raises(ValidationError, match="unknown trainer 'tensorflow'; available trainers: builtin, command, peft"):
        trainers.get_trainer("tensorflow")
