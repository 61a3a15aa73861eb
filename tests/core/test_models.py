"""Base models on this machine: found by name in the models folders, or by path; errors say what to give."""

import json

import pytest

from core.errors import ValidationError
from core.models import BUILTIN, HUGGING_FACE, SHIPPED_MODELS, list_models, model_roots, resolve_model


@pytest.fixture
def mine(tmp_path):
    root = tmp_path / "models"
    for name, model_type in [("my-llama", "llama"), ("tiny-gpt2", "gpt2")]:
        (root / name).mkdir(parents=True)
        (root / name / "config.json").write_text(json.dumps({"model_type": model_type}))
    (root / "notes").mkdir()
    return root


def test_the_shipped_models_are_a_builtin_classifier_and_a_hugging_face_lm():
    found = {model.name: model.kind for model in list_models(model_roots())}

    assert found == {"tiny-base": BUILTIN, "tiny-gpt2": HUGGING_FACE}


def test_models_in_the_data_dirs_folder_come_first_and_win_a_name_clash(mine):
    found = list_models(model_roots(mine), HUGGING_FACE)

    assert [(model.name, model.path) for model in found] == [("my-llama", mine / "my-llama"), ("tiny-gpt2", mine / "tiny-gpt2")]


def test_a_name_resolves_in_the_first_folder_that_has_it(mine):
    assert resolve_model("my-llama", model_roots(mine)) == mine / "my-llama"
    assert resolve_model("tiny-base", model_roots(mine), kind=BUILTIN) == SHIPPED_MODELS / "tiny-base"


def test_an_absolute_path_is_used_as_is(mine):
    assert resolve_model(str(mine / "my-llama"), model_roots()) == mine / "my-llama"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("notes", r"notes is not a Hugging Face model \(it has no config.json\).*my-llama, tiny-gpt2"),
        ("nowhere", "no model named “nowhere” in .*give the path of a model folder, or one of: my-llama, tiny-gpt2"),
        ("../my-llama", "must be a folder inside"),
        ("tiny-base", "tiny-base is the builtin trainer's numpy classifier"),
    ],
)
def test_a_bad_base_model_says_what_to_give_instead(mine, name, message):
    with pytest.raises(ValidationError, match=f"^base_model: .*{message}"):
        resolve_model(name, model_roots(mine))
