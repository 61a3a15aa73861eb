"""The new-run form follows the trainer: its settings, its defaults, its models; and the run page's system metrics."""

import json

import pytest

from core.artifacts import checkpoints_of
from core.settings import get_settings
from core.writer import MetricWriter
from jobs.trainers import unavailable_reason
from tests.apptest import as_shown


def widget_keys(app) -> set[str]:
    return {widget.key for kind in ("selectbox", "text_input", "number_input") for widget in getattr(app, kind) if widget.key}


def start(app) -> None:
    app.button[[b.label for b in app.button].index("Start")].click().run()


def test_the_form_shows_the_builtin_trainers_settings_first(open_page, populated):
    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(populated["experiment"]))

    assert app.selectbox(key="cfg_trainer").value == "builtin"
    assert app.selectbox(key="cfg_builtin_base_model").value == "tiny-base"
    assert app.text_input(key="cfg_builtin_target_modules").value == "fc1, fc2"
    assert "cfg_builtin_task" not in widget_keys(app) and "cfg_builtin_command" not in widget_keys(app)


@pytest.mark.parametrize("trainer", ["builtin", "peft", "command"])
def test_every_setting_is_labelled_as_a_sentence_starts(open_page, populated, trainer):
    """"base model" and "command" were the form's only lower-case labels, and "Lr schedule" named no acronym."""
    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(populated["experiment"]))
    app.selectbox(key="cfg_trainer").set_value(trainer).run()

    labels = [widget.label for kind in ("selectbox", "text_input") for widget in getattr(app, kind) if widget.key.startswith(f"cfg_{trainer}_")]

    assert labels and all(label[0].isupper() for label in labels), labels
    assert "Base model" in labels or trainer == "command"
    assert "LR schedule" in labels or trainer == "command"

def test_each_number_says_the_range_it_takes_and_a_list_what_empty_means(open_page, populated):
    """The help says what is allowed before the config's check says what was not."""
    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(populated["experiment"]))

    assert app.text_input(key="cfg_builtin_epochs").help == "Allowed: at least 1 and at most 10,000. Left empty: not set."  # "None Allowed: ..." before
    assert app.text_input(key="cfg_builtin_learning_rate").help.endswith(
        " Allowed: more than 0 and at most 10. Left empty: 0.01, the trainer's default."
    )  # a cleared field started the run with 0.01 and said nothing
    assert app.text_input(key="cfg_builtin_target_modules").help.endswith("Comma separated; left empty, the trainer's default.")


def test_whole_number_defaults_read_as_typed_and_a_fraction_as_stored(open_page, populated):
    """LoRA alpha showed "16.0", as Python prints a float."""
    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(populated["experiment"]))

    assert app.text_input(key="cfg_builtin_lora_alpha").value == "16"
    assert app.text_input(key="cfg_builtin_lora_dropout").value == "0"
    assert app.text_input(key="cfg_builtin_learning_rate").value == "0.01"


def test_switching_to_peft_resets_the_settings_to_peft_defaults_and_starts_a_peft_run_where_it_can_run(open_page, populated, app_store):
    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(populated["experiment"]))

    app.selectbox(key="cfg_trainer").set_value("peft").run()

    keys = widget_keys(app)
    assert not any(key.startswith("cfg_builtin_") for key in keys)
    assert app.selectbox(key="cfg_peft_base_model").value == "tiny-gpt2"
    assert "tiny-base" not in app.selectbox(key="cfg_peft_base_model").options  # the numpy classifier is no HF model
    assert app.text_input(key="cfg_peft_target_modules").value == "all-linear"
    assert app.selectbox(key="cfg_peft_task").options == ["causal-lm", "classification"]
    if unavailable_reason("peft"):  # without torch here: a run would fail at once, so Start is off, saying why
        assert "Start stays off until then." in " ".join(caption.value for caption in app.caption)
        assert app.button[[b.label for b in app.button].index("Start")].disabled
        return
    app.selectbox(key="cfg_peft_task").set_value("classification")  # in the form: sent with the click below
    start(app)

    config = app_store.list_runs(populated["experiment"])[0].config
    assert config["trainer"] == "peft" and config["base_model"] == "tiny-gpt2" and config["task"] == "classification"
    assert config["target_modules"] == ["all-linear"] and config["epochs"] == 1


def test_switching_back_to_builtin_brings_back_its_defaults(open_page, populated):
    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(populated["experiment"]))
    app.selectbox(key="cfg_trainer").set_value("peft").run()

    app.selectbox(key="cfg_trainer").set_value("builtin").run()

    assert app.text_input(key="cfg_builtin_target_modules").value == "fc1, fc2"
    assert app.selectbox(key="cfg_builtin_base_model").value == "tiny-base"


def test_the_peft_form_lists_the_models_in_the_data_dirs_models_folder(open_page, populated, app_store):
    mine = get_settings().models_dir / "my-llama"
    mine.mkdir(parents=True)
    (mine / "config.json").write_text(json.dumps({"model_type": "llama"}))
    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(populated["experiment"]))

    app.selectbox(key="cfg_trainer").set_value("peft").run()

    assert app.selectbox(key="cfg_peft_base_model").options == ["tiny-gpt2", "my-llama"]


def test_a_command_run_records_only_the_settings_given(open_page, populated, app_store, tmp_path, monkeypatch):
    commands = tmp_path / "commands.toml"
    commands.write_text('[commands.train-it]\ncommand = ["python", "train.py"]\n')
    monkeypatch.setenv("TUNEDECK_COMMANDS_FILE", str(commands))
    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(populated["experiment"]))

    app.selectbox(key="cfg_trainer").set_value("command").run()
    assert app.selectbox(key="cfg_command_command").value == "train-it"
    app.text_input(key="cfg_command_max_steps").set_value("100")
    start(app)

    config = app_store.list_runs(populated["experiment"])[0].config
    assert config == {"trainer": "command", "command": "train-it", "max_steps": 100}


def test_system_metrics_stay_off_the_run_charts_until_asked_for(open_page, populated, app_store):
    with MetricWriter(app_store) as writer:
        writer.log_series(populated["done"], "system/cpu_percent", [1, 2], [50.0, 60.0])
        writer.log_series(populated["done"], "system/rss_mb", [1, 2], [300.0, 310.0])

    app = open_page("pages/run.py", run=str(populated["done"]))
    picker = app.multiselect(key="run_metrics")
    training_only = len(app.get("vega_lite_chart"))
    picker.set_value([*picker.value, "system/cpu_percent"]).run()

    assert {"system/cpu_percent", "system/rss_mb"} <= set(picker.options)  # one click away
    assert training_only == 2  # loss, eval_loss
    assert len(app.get("vega_lite_chart")) == 3


def test_a_run_with_only_system_metrics_charts_none_until_one_is_picked(open_page, populated, app_store):
    """A run that failed before its first step logged its CPU and memory only: single dots, not its curves."""
    early = populated["queued"]
    app_store.mark_running(early, worker="host:1")
    with MetricWriter(app_store) as writer:
        writer.log_series(early, "system/cpu_percent", [0], [50.0])
    app_store.fail_run(early, "the dataset has no label column")

    app = open_page("pages/run.py", run=str(early))

    assert not app.get("vega_lite_chart")
    assert "Only system metrics were logged: pick one to chart." in [caption.value for caption in app.caption]


def test_a_failed_peft_run_with_a_checkpoint_can_be_resumed_from_its_page(open_page, populated, app_store):
    failed = app_store.create_run(populated["experiment"], {"trainer": "peft", "max_steps": 40, "learning_rate": 0.05})
    app_store.mark_running(failed, worker="host:1")
    app_store.fail_run(failed, "worker lost")
    (checkpoints_of(get_settings().checkpoints_dir, failed) / "checkpoint-20").mkdir(parents=True)
    app = open_page("pages/run.py", run=str(failed))

    app.button(key="resume").click().run()

    resumed = app_store.list_runs(populated["experiment"])[0]
    assert resumed.id != failed and resumed.config["resume_from_run"] == failed
    assert (resumed.config["max_steps"], resumed.config["learning_rate"]) == (40, 0.05)


def test_a_run_without_checkpoints_offers_no_resume(open_page, populated):
    app = open_page("pages/run.py", run=str(populated["failed"]))

    assert "resume" not in {button.key for button in app.button}


def test_a_module_the_builtin_model_lacks_is_refused_before_a_run_is_queued(open_page, populated, app_store):
    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(populated["experiment"]))
    before = len(app_store.list_runs(populated["experiment"]))

    app.text_input(key="cfg_builtin_target_modules").input("nosuch_module")
    start(app)

    assert len(app_store.list_runs(populated["experiment"])) == before
    assert [as_shown(e.value) for e in app.error] == [
        "Target modules must be among fc1, fc2 (or 'all-linear'), the layers the builtin trainer can adapt; "
        "nosuch_module is not."
    ]


def test_a_module_list_names_the_entry_that_is_wrong_as_the_form_labels_it(open_page, populated):
    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(populated["experiment"]))

    app.text_input(key="cfg_builtin_target_modules").input("fc1, " + "x" * 101)
    start(app)

    assert [as_shown(e.value) for e in app.error] == [
        "Target modules (item 2) is too long: at most 100 characters are allowed, and this one has 101."
    ]


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("epochs", "0", "Epochs must be at least 1."),
        ("lora_rank", "0", "LoRA rank must be at least 1."),
        ("batch_size", "1.5", "Batch size must be a whole number."),  # a number input made it 1
        ("learning_rate", "1e400", "Learning rate must be a number of ordinary size (this one is past 1.8e308, the largest a number here can be)."),  # one went back to the last value
        ("learning_rate", "inf", "Learning rate must be a finite number."),
        ("epochs", str(2**53 + 1), "Epochs must be at most 10,000."),  # past what a browser's number holds
        ("learning_rate", "fast", "Learning rate must be a valid number."),
        ("learning_rate", "-1", "Learning rate must be more than 0."),  # "more than 0.0", as Pydantic keeps the bound
        ("lora_dropout", "2", "LoRA dropout must be less than 1."),
    ],
)
def test_a_number_out_of_range_is_refused_with_a_sentence_naming_it(open_page, populated, app_store, field, value, said):
    """What was typed is what the config checks: a number input changed it without a word, and the run started."""
    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(populated["experiment"]))
    before = len(app_store.list_runs(populated["experiment"]))

    app.text_input(key=f"cfg_builtin_{field}").set_value(value)
    start(app)

    assert said in [as_shown(error.value) for error in app.error]
    assert len(app_store.list_runs(populated["experiment"])) == before


def test_an_experiment_a_script_logged_says_the_shipped_trainers_cannot_run_there_and_refuses_them(open_page, app_store):
    """Its dataset is "(logged from a script)": a run of the built-in trainer was queued and failed on a missing file."""
    experiment_id = app_store.create_experiment({"name": "from my script", "dataset": "(logged from a script)"})

    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(experiment_id))
    assert app.selectbox(key="cfg_trainer").value == "command"  # the form opens on the trainer that can run there
    app.selectbox(key="cfg_trainer").set_value("builtin").run()
    start(app)

    said = as_shown(app.info[0].value)
    assert "This experiment has no dataset file (its dataset is (logged from a script))" in said
    assert "the builtin and peft trainers cannot run here; a registered command, which reads its own data, can." in said
    assert "this experiment has no dataset file to train on" in as_shown(app.error[0].value).lower()
    assert app_store.list_runs(experiment_id) == []
