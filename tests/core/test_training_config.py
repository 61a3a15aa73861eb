"""Each trainer reads its own settings with its own defaults; what it would ignore is refused."""

import pytest

from core.errors import ValidationError
from core.runs import parse_config, resume_config, start_run
from core.training_config import TRAINER_FIELDS, fields_for
from core.validation import labelled
from jobs.trainers import TRAINERS


def test_every_registered_trainer_declares_its_settings():
    assert set(TRAINER_FIELDS) == set(TRAINERS)


def test_a_peft_config_gets_peft_defaults_not_the_builtin_ones():
    config = parse_config({"trainer": "peft", "epochs": 1})

    assert (config.base_model, config.target_modules, config.task) == ("tiny-gpt2", ["all-linear"], "causal-lm")
    assert config.save_interval == 50


def test_a_builtin_config_keeps_its_own_defaults():
    config = parse_config({"epochs": 1})

    assert (config.trainer, config.base_model, config.target_modules) == ("builtin", "tiny-base", ["fc1", "fc2"])


@pytest.mark.parametrize("given", ["fc1,,fc1", ["fc1", "fc1"], " fc1 , fc1 ,"])
def test_a_module_named_twice_or_an_empty_entry_is_the_one_module(given):
    assert parse_config({"epochs": 1, "target_modules": given}).target_modules == ["fc1"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"epochs": 1, "task": "classification"}, "task: not a setting of the builtin trainer (only the peft trainer reads it)"),
        ({"epochs": 1, "resume_from_run": 3}, "resume_from_run: not a setting of the builtin trainer"),
        ({"trainer": "peft", "epochs": 1, "command": "x"}, "command: not a setting of the peft trainer (only the command trainer"),
        ({"trainer": "tensorflow", "epochs": 1}, "trainer: unknown trainer 'tensorflow'; available trainers: builtin, command, peft"),
        (
            {"trainer": "peft", "epochs": 1, "target_modules": ["all-linear", "c_attn"]},
            "target_modules must be 'all-linear' or 'auto' alone, without other module names",
        ),
        (
            {"epochs": 1, "target_modules": "fc1, nosuch_module"},
            "target_modules must be among fc1, fc2 (or 'all-linear'), the layers the builtin trainer can adapt; "
            "nosuch_module is not",
        ),
    ],
)
def test_settings_a_trainer_would_ignore_are_refused_with_what_to_do(config, message):
    with pytest.raises(ValidationError) as caught:
        parse_config(config)

    assert message in str(caught.value)


def test_the_peft_trainers_module_names_are_checked_by_the_model_it_loads_not_before():
    assert parse_config({"trainer": "peft", "epochs": 1, "target_modules": "c_attn"}).target_modules == ["c_attn"]


def test_all_linear_may_be_given_as_text():
    assert parse_config({"trainer": "peft", "epochs": 1, "target_modules": "all-linear"}).target_modules == ["all-linear"]
    assert parse_config({"epochs": 1, "target_modules": "fc1, fc2"}).target_modules == ["fc1", "fc2"]


def test_a_command_run_records_only_the_settings_given(store, make_experiment):
    run_id = start_run(store, make_experiment(), {"trainer": "command", "command": "finetune", "learning_rate": 3e-4})

    assert store.get_run(run_id).config == {"trainer": "command", "command": "finetune", "learning_rate": 3e-4}


def test_a_command_run_needs_no_length():
    assert parse_config({"trainer": "command", "command": "finetune"}).max_steps is None


def test_the_form_shows_each_trainer_its_own_settings():
    assert "task" in fields_for("peft") and "task" not in fields_for("builtin")
    assert "command" in fields_for("command") and "target_modules" in fields_for("builtin")


def test_a_resumed_run_copies_the_settings_links_the_old_run_and_drops_logged_params(store, make_experiment):
    experiment_id = make_experiment()
    first = start_run(store, experiment_id, {"trainer": "peft", "max_steps": 40})
    store.log_params(first, {"trainable_params": 8192, "lora_target_modules": ["c_attn"]})
    store.mark_running(first, "w:1")
    store.fail_run(first, "out of memory")

    second = start_run(store, experiment_id, resume_config(store.get_run(first)))

    config = store.get_run(second).config
    assert config["resume_from_run"] == first and config["max_steps"] == 40 and "trainable_params" not in config


@pytest.mark.parametrize("status", ["queued", "running"])
def test_a_run_that_has_not_ended_cannot_be_resumed_yet(store, make_experiment, status):
    experiment_id = make_experiment()
    first = start_run(store, experiment_id, {"trainer": "peft", "max_steps": 40})
    if status == "running":
        store.mark_running(first, "w:1")

    with pytest.raises(ValidationError, match=f"resume_from_run: run {first} is still {status}; resume it once it has ended"):
        start_run(store, experiment_id, resume_config(store.get_run(first)))

    assert [run.id for run in store.list_runs(experiment_id)] == [first]


def test_a_run_resumes_only_a_run_of_its_own_experiment(store, make_experiment):
    other = start_run(store, make_experiment("elsewhere"), {"trainer": "peft", "max_steps": 4})
    experiment_id = make_experiment("here")
    before = len(store.list_runs(experiment_id))

    with pytest.raises(ValidationError, match=f"resume_from_run: run {other} belongs to another experiment"):
        start_run(store, experiment_id, {"trainer": "peft", "max_steps": 4, "resume_from_run": other})

    assert len(store.list_runs(experiment_id)) == before


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_learning_rate_that_is_not_a_number_is_named_as_such(value):
    with pytest.raises(ValidationError, match="learning_rate must be a finite number"):
        parse_config({"epochs": 1, "learning_rate": value})


@pytest.mark.parametrize("typed", ["1e400", "1" + "0" * 10_000, "-1e999"])
def test_a_number_too_large_to_hold_is_called_too_large_not_infinite(typed):
    with pytest.raises(ValidationError, match=r"learning_rate must be a number of ordinary size \(this one is past 1.8e308"):
        parse_config({"epochs": 1, "learning_rate": typed})


@pytest.mark.parametrize("typed", ["inf", "-Infinity", "nan"])
def test_infinity_typed_as_a_word_is_named_as_such(typed):
    with pytest.raises(ValidationError, match="learning_rate must be a finite number"):
        parse_config({"epochs": 1, "learning_rate": typed})


def test_a_message_that_names_its_field_itself_is_not_prefixed_with_it_again():
    assert labelled("dataset", "dataset /etc/passwd is outside the folders datasets may come from") == (
        "dataset /etc/passwd is outside the folders datasets may come from"
    )
    assert labelled("trainer", "unknown trainer 'x'") == "trainer: unknown trainer 'x'"


def test_a_command_run_without_a_command_says_what_the_trainer_runs_and_where_commands_come_from():
    """It said "trainer 'command' needs a command name, and a command name needs trainer 'command'": a circle."""
    with pytest.raises(ValidationError, match="the command trainer runs a registered training command: name one"):
        parse_config({"trainer": "command", "max_steps": 1})
    with pytest.raises(ValidationError, match=r"command: not a setting of the builtin trainer \(only the command trainer reads it\)"):
        parse_config({"trainer": "builtin", "command": "finetune", "epochs": 1})
