"""Trainers are picked by name; one whose packages are missing is listed as unavailable, never a crash."""

import importlib
import importlib.machinery
import importlib.util
import inspect
import re

import pytest

from core.errors import ValidationError
from jobs import tasks, trainers
from jobs.trainers import peft_trainer
from jobs.trainers.base import Trainer
from tests.jobs.conftest import SAMPLE


def test_every_trainer_is_listed_with_its_availability():
    listed = trainers.available_trainers()

    assert set(listed) == {"builtin", "peft", "command"}
    assert listed["builtin"] is None and listed["command"] is None


def test_a_trainer_without_its_packages_is_unavailable_with_an_install_hint(monkeypatch):
    """Only peft is missing here, whether or not torch and the rest are installed on this machine."""
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        if name in peft_trainer.REQUIRED:
            return None if name == "peft" else importlib.machinery.ModuleSpec(name, None)
        return real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)

    reason = trainers.available_trainers()["peft"]

    assert "peft missing" in reason and "pip install -r requirements-train.txt" in reason
    with pytest.raises(ValidationError, match="the peft trainer is unavailable here"):
        trainers.get_trainer("peft")


def test_without_torch_the_hint_says_to_install_torch_first_in_the_machines_build(monkeypatch):
    """requirements-train.txt alone would pull PyPI's CUDA build of torch, several GB, even without a GPU."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "torch" else real_find_spec(name, *args))

    reason = trainers.available_trainers()["peft"]

    assert "torch" in reason.split("(")[1].split(" missing")[0]
    assert reason.endswith("install torch first, in the build for this machine (README: Set up, run, test), then pip install -r requirements-train.txt (installed as a package: pip install \".[train]\" in the project folder)")


def test_an_unknown_trainer_names_the_known_ones():
    with pytest.raises(ValidationError, match="unknown trainer 'tensorflow'; available trainers: builtin, command, peft"):
        trainers.get_trainer("tensorflow")


@pytest.mark.parametrize("name", sorted(trainers.TRAINERS))
def test_every_trainer_takes_the_calls_the_worker_makes(name):
    """Each trainer's `train` has the parameters of the Trainer seam, by name, kind and order, and takes the
    optional ones by default (the module is read without its heavy packages: they load only when it trains)."""
    seam = inspect.signature(Trainer.__call__).parameters
    train = inspect.signature(importlib.import_module(trainers.TRAINERS[name]).train).parameters

    assert [(p.name, p.kind) for p in train.values()] == [(p.name, p.kind) for p in seam.values() if p.name != "self"]
    assert [p.name for p in train.values() if p.default is p.empty] == [
        p.name for p in seam.values() if p.default is p.empty and p.name != "self"
    ]


@pytest.mark.parametrize(
    ("trainer", "model", "message"),
    [
        ("builtin", "tiny-bsae", "base model 'tiny-bsae' not found; did you mean 'tiny-base'?"),
        ("builtin", "tiny-gpt", "base model 'tiny-gpt' not found"),  # not "did you mean 'tiny-gpt2'": not the builtin's kind
        ("peft", "no-such-model", "no-such-model"),
    ],
)
def test_a_base_model_this_machine_does_not_have_is_refused_before_a_run_is_queued(job_store, trainer, model, message):
    """A typo in the form's base model was queued, then failed on the worker."""
    experiment_id = job_store.create_experiment({"name": f"models {trainer} {model}", "dataset": SAMPLE})

    with pytest.raises(ValidationError, match=re.escape(message)) as refused:
        tasks.start_run(job_store, experiment_id, {"trainer": trainer, "base_model": model, "epochs": 1})
    assert trainer == "peft" or "tiny-gpt2" not in str(refused.value)

    assert job_store.list_runs(experiment_id) == []
