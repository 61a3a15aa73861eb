"""Registered training commands: an administrator names them, runs pick them, the worker runs them."""

import io
import signal
import sys
import textwrap
import time
import uuid

import pytest

from core.commands import CommandSpec, get_command, load_commands, render_arguments
from core.dataset_labels import SCRIPT_DATASET
from core.errors import ValidationError
from core.logs import read_log
from core.runs import parse_config
from core.settings import Settings, get_settings
from core.status import RunStatus
from jobs import tasks
from jobs.trainers import command
from tests.jobs.conftest import ROOT, SAMPLE, alive, start_worker, stop_worker, wait_until_terminal
from tests.waiting import wait_for

METRIC_LINES = (
    "import json\n"
    "for step in (1, 2, 3):\n"
    "    print(json.dumps(dict(tunedeck='metrics', step=step, values=dict(loss=1.0 / step))))\n"
    "print('plain output goes to the log')\n"
)
NOT_UTF8 = (
    "import json, sys\n"
    "print(json.dumps(dict(tunedeck='metrics', step=1, values=dict(loss=1.0))), flush=True)\n"
    "sys.stdout.buffer.write(b'caf\\xe9 latin-1 and a long line ' + b'x' * 200_000 + b'\\n'); sys.stdout.flush()\n"
    "print(json.dumps(dict(tunedeck='metrics', step=2, values=dict(loss=0.5))))\n"
)
RELATIVE_ADAPTER = (
    "import json, pathlib\n"
    "pathlib.Path('saved').mkdir(); pathlib.Path('saved', 'adapter_model.bin').write_bytes(b'w')\n"
    "print(json.dumps(dict(tunedeck='adapter', path='saved', base_model='tiny-base')))\n"
)
# A wrapper as most real commands are (a shell script, a launcher): bash stays the parent of the python that trains.
WRAPPED = (
    "import json, os, pathlib, signal, sys, time\n"
    "def save(*_):  # a checkpoint written on SIGTERM, which takes a moment\n"
    "    time.sleep(1.0)\n"
    "    pathlib.Path(sys.argv[1] + '.saved').write_text('saved')\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, save)\n"
    "pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))\n"
    "for step in range(100_000):\n"
    "    if step < 3:  # then quiet, as a training between evaluations: a closed pipe would not end it\n"
    "        print(json.dumps(dict(tunedeck='metrics', step=step, values=dict(loss=1.0))), flush=True)\n"
    "    time.sleep(0.1)\n"
)
STUBBORN = (  # a training that ignores SIGTERM: its keeper waits out the grace before killing it
    "import json, signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print(json.dumps(dict(tunedeck='metrics', step=1, values=dict(loss=1.0))), flush=True)\n"
    "time.sleep(300)\n"
)
KILLED = (
    "import json, os, signal\n"
    "print(json.dumps(dict(tunedeck='metrics', step=1, values=dict(loss=1.0))), flush=True)\n"
    "os.kill(os.getpid(), signal.SIGKILL)\n"
)
WRITES_FILES = "import os, pathlib; pathlib.Path(os.environ['TUNEDECK_OUTPUT_DIR'], 'adapter_model.bin').write_bytes(b'w')"


@pytest.fixture
def commands_file(tmp_path):
    (tmp_path / "command-folder").mkdir()
    (tmp_path / "user-repo" / "jobs").mkdir(parents=True)  # a training repository with a `jobs` package of its own
    (tmp_path / "user-repo" / "jobs" / "__init__.py").write_text("raise SystemExit('the user jobs package was imported')")
    path = tmp_path / "commands.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [commands.sdk-example]
            command = ["{{python}}", "-m", "examples.train_with_sdk", "--steps", "{{max_steps}}", "--learning-rate", "{{learning_rate}}"]
            working_dir = "{ROOT}"

            [commands.json-lines]
            command = ["{sys.executable}", "-c", {METRIC_LINES!r}]

            [commands.not-utf8]
            command = ["{sys.executable}", "-c", {NOT_UTF8!r}]

            [commands.relative-adapter]
            command = ["{sys.executable}", "-c", {RELATIVE_ADAPTER!r}]
            working_dir = "{tmp_path / 'command-folder'}"

            [commands.writes-files]
            command = ["{sys.executable}", "-c", {WRITES_FILES!r}]

            [commands.wrapped]
            command = ["bash", "-c", {f'{sys.executable} -c "$0" "$1"; echo wrapper done'!r}, {WRAPPED!r}, "{tmp_path / 'trainer.pid'}"]

            [commands.stubborn]
            command = ["{sys.executable}", "-c", {STUBBORN!r}]

            [commands.shadowed]
            command = ["{sys.executable}", "-c", {METRIC_LINES!r}]
            working_dir = "{tmp_path / 'user-repo'}"

            [commands.missing]
            command = ["{tmp_path / 'no-such-trainer'}"]

            [commands.says-dataset]
            command = ["{sys.executable}", "-c", "import os, sys; print('dataset', repr(os.environ['TUNEDECK_DATASET']), repr(sys.argv[1]))", "{{dataset}}"]

            [commands.killed]
            command = ["{sys.executable}", "-c", {KILLED!r}]

            [commands.broken]
            command = ["{sys.executable}", "-c", "import sys; print('CUDA out of memory'); sys.exit(3)"]
            """
        )
    )
    return path


@pytest.fixture
def command_worker(commands_file):
    worker = start_worker("--workers", "2", TUNEDECK_COMMANDS_FILE=str(commands_file))
    yield worker
    stop_worker(worker)


def run_command(store, name: str, **config) -> object:
    experiment_id = store.create_experiment({"name": f"command {uuid.uuid4().hex[:8]}", "dataset": SAMPLE})
    run_id = tasks.start_run(store, experiment_id, {"trainer": "command", "command": name, "max_steps": 40, **config})
    (run,) = wait_until_terminal(store, [run_id])
    return run


def test_the_example_commands_file_runs_python_as_the_worker_does():
    """{python} is the worker's interpreter: "python" on PATH may be another one, without TuneDeck's packages."""
    example = load_commands(Settings(commands_file=ROOT / "commands.example.toml"))["sdk-example"]

    assert render_arguments(example, {"python": sys.executable, "max_steps": 5, "learning_rate": 0.1})[:3] == [
        sys.executable, "-m", "examples.train_with_sdk"
    ]


def test_a_registered_command_reports_through_the_sdk_and_its_adapter_is_registered(command_worker, job_store):
    run = run_command(job_store, "sdk-example", learning_rate=0.05)

    assert run.status is RunStatus.COMPLETED, run.error
    assert job_store.get_run_metrics(run.id).summary["loss"].count == 40
    adapter = job_store.get_adapter(run.adapter.id)
    assert adapter.base_model == "toy-linear"
    assert adapter.path.endswith(f"run-{run.id}")
    assert "final loss" in read_log(get_settings(), run.id)
    # The training process says so once the store has the outcome, a moment after the run reads completed.
    wait_for(lambda: "completed after 40 steps" in read_log(get_settings(), run.id), 30, "the log's last line")


def test_a_worker_started_in_a_shell_with_tracking_disabled_still_records_its_runs(commands_file, job_store):
    """TUNEDECK_MODE=disabled, exported for the user's own tests, reached the command's script: the run completed
    with no metrics and nothing said why."""
    worker = start_worker(TUNEDECK_COMMANDS_FILE=str(commands_file), TUNEDECK_MODE="disabled")
    try:
        run = run_command(job_store, "sdk-example", learning_rate=0.05)
    finally:
        stop_worker(worker)

    assert run.status is RunStatus.COMPLETED, run.error
    assert job_store.get_run_metrics(run.id).summary["loss"].count == 40


def start_wrapped(store, tmp_path) -> tuple[int, int]:
    experiment_id = store.create_experiment({"name": f"wrapped {uuid.uuid4().hex[:8]}", "dataset": SAMPLE})
    run_id = tasks.start_run(store, experiment_id, {"trainer": "command", "command": "wrapped", "max_steps": 40})
    wait_for(lambda: "loss" in store.get_run(run_id).metrics, 60, "the wrapped training to log")
    return run_id, int((tmp_path / "trainer.pid").read_text())


def test_cancelling_a_command_behind_a_wrapper_stops_the_training_itself(command_worker, job_store, tmp_path):
    """Only the wrapper (bash) was signalled: the run read cancelled while the python it started trained on, orphaned."""
    run_id, trainer = start_wrapped(job_store, tmp_path)

    tasks.cancel_run(job_store, run_id)

    wait_for(lambda: not alive(trainer), 30, "the wrapped training to stop")
    assert job_store.get_run(run_id).status is RunStatus.CANCELLED
    assert (tmp_path / "trainer.pid.saved").exists()  # its grace was the group's: the wrapper's death did not cut it


def test_a_killed_worker_leaves_no_training_behind_a_wrapper(commands_file, job_store, tmp_path):
    """The kernel's parent-death signal reached the wrapper only; the python under it trained on for good."""
    worker = start_worker(TUNEDECK_COMMANDS_FILE=str(commands_file))
    try:
        _, trainer = start_wrapped(job_store, tmp_path)
        worker.send_signal(signal.SIGKILL)
        wait_for(lambda: not alive(trainer), 30, "the wrapped training to stop with its worker")
    finally:
        stop_worker(worker)


def test_a_second_stop_signal_of_another_kind_stops_the_worker_at_once(commands_file, job_store):
    """SIGTERM, then Ctrl-C: the worker still waited out the grace of a training that ignores SIGTERM (20 s)."""
    worker = start_worker(TUNEDECK_COMMANDS_FILE=str(commands_file))
    try:
        experiment_id = job_store.create_experiment({"name": f"stubborn {uuid.uuid4().hex[:8]}", "dataset": SAMPLE})
        run_id = tasks.start_run(job_store, experiment_id, {"trainer": "command", "command": "stubborn", "max_steps": 40})
        wait_for(lambda: "loss" in job_store.get_run(run_id).metrics, 60, "the training to log")
        worker.send_signal(signal.SIGTERM)
        time.sleep(1)
        asked = time.monotonic()
        worker.send_signal(signal.SIGINT)
        worker.wait(timeout=60)
        assert time.monotonic() - asked < 10
    finally:
        stop_worker(worker)


def test_a_command_whose_folder_has_a_jobs_package_of_its_own_runs(command_worker, job_store):
    """The keeper was started with the command's folder first on its path: a user's `jobs` package hid TuneDeck's."""
    run = run_command(job_store, "shadowed")

    assert run.status is RunStatus.COMPLETED, run.error


def test_a_command_that_cannot_start_says_so(command_worker, job_store):
    run = run_command(job_store, "missing")

    assert run.status is RunStatus.FAILED
    assert run.error.startswith("command 'missing' could not start: [Errno 2] No such file or directory")


def test_a_command_can_report_metrics_as_json_lines(command_worker, job_store):
    run = run_command(job_store, "json-lines")

    assert run.status is RunStatus.COMPLETED, run.error
    assert job_store.get_run_metrics(run.id).of("loss")["value"].to_list() == [1.0, 0.5, 1.0 / 3]
    assert run.adapter is None
    assert "plain output goes to the log" in read_log(get_settings(), run.id)


def test_a_command_that_prints_bytes_that_are_not_utf8_keeps_its_metrics_and_ends(command_worker, job_store):
    """A latin-1 line once stopped the reader: the run kept running, or completed with no metrics at all."""
    run = run_command(job_store, "not-utf8")

    assert run.status is RunStatus.COMPLETED, run.error
    assert job_store.get_run_metrics(run.id).of("loss")["value"].to_list() == [1.0, 0.5]
    assert "caf\ufffd latin-1" in read_log(get_settings(), run.id)


def test_an_adapter_folder_a_command_names_relative_to_its_own_folder_is_registered(command_worker, job_store):
    run = run_command(job_store, "relative-adapter")

    assert run.status is RunStatus.COMPLETED, run.error
    assert run.adapter is not None and job_store.get_adapter(run.adapter.id).base_model == "tiny-base"


def test_a_command_runs_params_are_what_it_was_given_and_what_its_placeholders_used(command_worker, job_store):
    plain = run_command(job_store, "json-lines")
    placeholders = run_command(job_store, "sdk-example")

    assert plain.config == {"trainer": "command", "command": "json-lines", "max_steps": 40}
    assert placeholders.status is RunStatus.COMPLETED, placeholders.error
    assert placeholders.config["learning_rate"] == 0.01  # the default its {learning_rate} received
    assert placeholders.config["lora_rank"] == 4  # the script's own param, not the builtin default of 8
    assert not {"batch_size", "base_model", "target_modules", "eval_interval"} & set(placeholders.config)


def test_an_adapter_whose_command_named_no_base_model_is_registered_as_unknown(command_worker, job_store):
    run = run_command(job_store, "writes-files")

    assert run.status is RunStatus.COMPLETED, run.error
    assert job_store.get_adapter(run.adapter.id).base_model == "unknown"


def test_a_failing_command_fails_the_run_with_its_last_output(command_worker, job_store):
    run = run_command(job_store, "broken")

    assert run.status is RunStatus.FAILED
    assert run.error == "command 'broken' exited with code 3: CUDA out of memory"


def test_a_command_killed_by_a_signal_is_said_to_be_killed_not_to_have_exited_with_no_output(command_worker, job_store):
    """It read "exited with code 137: no output", though its metric lines had come."""
    run = run_command(job_store, "killed")

    assert run.status is RunStatus.FAILED
    assert run.error == (
        "command 'killed' was killed by signal 9, SIGKILL (the system may have run out of memory, or it was killed by "
        "hand): no output besides its metric lines"
    )
    assert run.metrics["loss"].count == 1


def test_a_command_on_an_experiment_a_script_logged_gets_no_dataset_rather_than_a_made_up_path(command_worker, job_store):
    """Its label, "(logged from a script)", reached the command as the path <worker folder>/(logged from a script)."""
    experiment_id = job_store.create_experiment({"name": "logged", "dataset": SCRIPT_DATASET})
    run_id = tasks.start_run(job_store, experiment_id, {"trainer": "command", "command": "says-dataset", "max_steps": 1})

    (run,) = wait_until_terminal(job_store, [run_id])

    assert run.status is RunStatus.COMPLETED, run.error
    assert "dataset '' ''" in read_log(get_settings(), run_id)


def test_an_unregistered_command_name_is_never_executed(command_worker, job_store):
    run = run_command(job_store, "rm")

    assert run.status is RunStatus.FAILED
    assert "no training command named “rm”" in run.error


@pytest.mark.parametrize("name", ["rm -rf /", "python train.py", "$(reboot)", "a;b"])
def test_free_form_commands_are_rejected_in_the_config(name):
    from core.runs import parse_config

    with pytest.raises(ValidationError) as caught:
        parse_config({"trainer": "command", "command": name, "max_steps": 1})
    assert "command" in caught.value.field_errors


def test_commands_file_is_validated_with_a_clear_error(tmp_path):
    bad = tmp_path / "commands.toml"
    bad.write_text('[commands.x]\ncommand = "not a list"\n')

    with pytest.raises(ValidationError, match="invalid commands file"):
        load_commands(Settings(commands_file=bad))


def test_no_commands_file_means_no_commands(tmp_path):
    settings = Settings(commands_file=tmp_path / "missing.toml")

    assert load_commands(settings) == {}
    with pytest.raises(ValidationError, match="no training command named “x”; registered commands: none"):
        get_command(settings, "x")


def test_placeholders_are_filled_per_argument_and_unknown_ones_refused():
    spec = CommandSpec(command=["train", "--lr", "{learning_rate}", "--out={output_dir}"])

    assert render_arguments(spec, {"learning_rate": 0.1, "output_dir": "/o"}) == ["train", "--lr", "0.1", "--out=/o"]
    with pytest.raises(ValidationError, match="uses {secret}"):
        render_arguments(CommandSpec(command=["{secret}"]), {"learning_rate": 0.1})
    with pytest.raises(ValidationError, match=r"passes \{max_steps\} in '--steps=\{max_steps\}', and this run does not set max_steps"):
        render_arguments(CommandSpec(command=["--steps={max_steps}"]), {"learning_rate": 0.1})  # a setting left unset
    with pytest.raises(ValidationError, match="uses {learning_rate.__class__}"):
        render_arguments(CommandSpec(command=["{learning_rate.__class__}"]), {"learning_rate": 0.1})


def test_a_brace_meant_literally_is_written_twice_and_a_single_one_says_so():
    literal = CommandSpec(command=["python", "-c", "import json; print(json.dumps({{'lr': {learning_rate}}}))"])

    assert render_arguments(literal, {"learning_rate": 0.1})[2] == "import json; print(json.dumps({'lr': 0.1}))"
    with pytest.raises(ValidationError, match=r"a brace meant literally is written twice: \{\{ or \}\}"):
        render_arguments(CommandSpec(command=["print({'a': 1})"]), {"learning_rate": 0.1})


def test_a_command_this_machines_workers_cannot_run_is_refused_before_a_run_is_queued(commands_file, monkeypatch, job_store):
    """With the worker's commands file here too, a typo or a missing setting is said at once, not by a failed run."""
    monkeypatch.setenv("TUNEDECK_COMMANDS_FILE", str(commands_file))
    experiment_id = job_store.create_experiment({"name": f"checked {uuid.uuid4().hex[:8]}", "dataset": SAMPLE})

    with pytest.raises(ValidationError, match="no training command named “json-line”; registered commands: broken"):
        tasks.start_run(job_store, experiment_id, {"trainer": "command", "command": "json-line"})
    with pytest.raises(ValidationError, match=r"this command passes \{max_steps\}, and this run does not set max_steps: give it a value in the run's settings"):
        tasks.start_run(job_store, experiment_id, {"trainer": "command", "command": "sdk-example", "learning_rate": 0.1})

    assert job_store.list_runs(experiment_id) == []
    command.check(parse_config({"trainer": "command", "command": "json-lines"}))  # a command it can run: no word


def test_the_first_bad_metric_line_of_a_command_is_the_reason_its_run_fails():
    """Later lines are still read (the pipe never fills), but the reason given is where it first went wrong."""

    def log(step: int, values: dict[str, float]) -> None:
        if any(value != value for value in values.values()):
            raise ValidationError(f"metric at step {step} is nan: only finite numbers are stored")

    follower = command._Follower(log)
    lines = [
        '{"tunedeck": "metrics", "step": 1, "values": {"loss": 0.9}}',
        '{"tunedeck": "metrics", "step": 2, "values": {"loss": NaN}}',
        '{"tunedeck": "metrics", "step": "three", "values": {"loss": 0.5}}',
        "done",
    ]
    follower.follow(io.StringIO("\n".join(lines) + "\n"))

    assert str(follower.error) == "metric at step 2 is nan: only finite numbers are stored"
    assert list(follower.tail) == ["done"]
