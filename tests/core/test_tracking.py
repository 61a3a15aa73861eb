"""The tracking SDK from a script's point of view."""

import re
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from core import tracking
from core.artifacts import describe_adapter, keep_file, run_files
from core.errors import InvalidTransitionError, StoreError, ValidationError
from core.status import RunStatus


def test_start_run_creates_the_experiment_by_name_and_logs_metrics_and_params_and_keeps_the_adapter_in_the_data_dir(
    store, tmp_path_factory
):
    adapter = tmp_path_factory.mktemp("saved-elsewhere")
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")

    with tracking.start_run("my script", params={"learning_rate": 3e-4}, store=store) as run:
        for step in range(1, 4):
            run.log(step, {"loss": 1.0 / step})
        run.log_params({"batch_size": 8})
        run.register_adapter(adapter, base_model="gpt2")

    finished = store.get_run(run.id)
    assert finished.status is RunStatus.COMPLETED
    assert finished.config == {"learning_rate": 3e-4, "batch_size": 8}
    assert finished.metrics["loss"].count == 3
    registered = store.get_adapter(finished.adapter.id)
    assert registered.base_model == "gpt2"
    kept = store.data_dir / "adapters" / f"run-{run.id}"
    assert registered.path == str(kept)
    assert (kept / "adapter_model.safetensors").read_bytes() == b"weights"
    assert store.get_experiment(finished.experiment_id).name == "my script"


def test_two_runs_saving_their_adapters_to_one_folder_in_the_data_dir_each_keep_their_own(store):
    """As examples.train_with_sdk does by default: the second run's files must not become the first's adapter."""
    saved = store.data_dir / "sdk-example"
    adapters = []
    for weights in (b"first run", b"second run"):
        saved.mkdir(exist_ok=True)
        (saved / "adapter_model.safetensors").write_bytes(weights)
        with tracking.start_run("same folder", store=store) as run:
            run.log_adapter(saved, base_model="gpt2")
        adapters.append(store.get_adapter(store.get_run(run.id).adapter.id))

    first, second = (Path(adapter.path) / "adapter_model.safetensors" for adapter in adapters)
    assert (first.read_bytes(), second.read_bytes()) == (b"first run", b"second run")
    assert [describe_adapter(Path(a.path), "gpt2").checksum for a in adapters] == [a.checksum for a in adapters]


def test_an_adapter_that_cannot_be_copied_at_the_end_fails_the_run_saying_so(store, tmp_path_factory):
    adapter = tmp_path_factory.mktemp("saved-elsewhere")
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    with pytest.raises(OSError), tracking.start_run("vanishing adapter", store=store) as run:
        run.log({"loss": 1.0}, step=1)
        run.log_adapter(adapter, base_model="gpt2")
        shutil.rmtree(adapter)  # gone before the run ends, as a failed copy would leave it

    ended = store.get_run(run.id)
    assert ended.status is RunStatus.FAILED
    assert ended.error.startswith("the adapter could not be kept")
    assert ended.metrics["loss"].count == 1


@pytest.mark.parametrize(
    ("raised", "error"),
    [(KeyboardInterrupt(), "interrupted (Ctrl-C)"), (RuntimeError(), "RuntimeError"), (ValueError("nan loss"), "ValueError: nan loss")],
)
def test_a_script_that_stops_on_an_exception_fails_its_run_saying_what_stopped_it(store, raised, error):
    with pytest.raises(type(raised)), tracking.start_run("stopped", store=store) as run:
        run.log({"loss": 1.0}, step=1)
        raise raised

    assert store.get_run(run.id).error == error


@pytest.mark.parametrize("code", [0, None])
def test_a_script_that_exits_with_success_inside_its_block_completes_its_run(store, code):
    with pytest.raises(SystemExit), tracking.start_run("exits early", store=store) as run:
        run.log({"loss": 1.0}, step=1)
        sys.exit(code)

    assert store.get_run(run.id).status == "completed"


def test_a_script_that_exits_with_a_failure_code_fails_its_run(store):
    with pytest.raises(SystemExit), tracking.start_run("exits badly", store=store) as run:
        sys.exit(3)

    assert store.get_run(run.id).status == "failed"


def test_start_run_reuses_a_live_experiment_of_that_name(store, make_experiment):
    experiment_id = make_experiment("existing")

    with tracking.start_run("existing", store=store) as run:
        run.log(1, {"loss": 1.0})

    assert store.get_run(run.id).experiment_id == experiment_id


def test_an_exception_in_the_script_fails_the_run_with_its_traceback(store):
    with pytest.raises(RuntimeError), tracking.start_run("crashy", store=store) as run:
        run.log(1, {"loss": 2.0})
        raise RuntimeError("out of memory")

    failed = store.get_run(run.id)
    assert failed.status is RunStatus.FAILED
    assert failed.error == "RuntimeError: out of memory"
    assert "Traceback" in failed.traceback
    assert failed.metrics["loss"].count == 1


def test_a_cancel_from_the_dashboard_reaches_the_script(store, monkeypatch):
    monkeypatch.setenv("TUNEDECK_HEARTBEAT_INTERVAL", "0.1")
    run = tracking.start_run("cancellable", store=store)

    store.cancel_run(run.id)
    assert run.cancelled.wait(timeout=10)
    assert run.should_stop
    run.__exit__(None, None, None)

    assert store.get_run(run.id).status is RunStatus.CANCELLED


def test_attaching_to_a_run_another_script_is_running_joins_it_and_leaves_its_end_to_that_script(store, tmp_path):
    """An eval script attached to a training script's run once completed it on leaving its block: the trainer then
    stopped as if cancelled, and its adapter was dropped."""
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"w")
    with tracking.start_run("training", store=store) as trainer:
        trainer.log({"loss": 1.0}, step=1)
        with tracking.attach(trainer.id, store=store) as evaluator:
            evaluator.log({"eval_loss": 0.7}, step=1)
            with pytest.raises(ValidationError, match="the process that started it registers its adapter"):
                evaluator.log_adapter(adapter)
        assert store.get_run(trainer.id).status == "running" and not trainer.should_stop
        trainer.log({"loss": 0.5}, step=2)
        trainer.log_adapter(adapter, base_model="tiny-base")

    run = store.get_run(trainer.id)
    assert run.status == "completed" and run.adapter is not None
    assert {key: summary.last for key, summary in run.metrics.items()} == {"loss": 0.5, "eval_loss": 0.7}


def test_attaching_to_a_queued_run_joins_it_too_so_neither_leaving_nor_an_error_ends_it(store, make_experiment):
    run_id = store.create_run(make_experiment(), {"learning_rate": 0.1})

    with pytest.raises(RuntimeError), tracking.attach(run_id, store=store) as early:
        store.mark_running(run_id, "w:1")  # a worker starts it meanwhile
        early.log({"eval_loss": 0.7}, step=1)
        raise RuntimeError("the evaluation script's own mistake")

    assert store.get_run(run_id).status == "running"


def test_a_worker_started_script_that_names_its_own_run_id_owns_it(store, make_experiment, make_run, monkeypatch):
    run_id = make_run(make_experiment(), status="running")
    monkeypatch.setenv("TUNEDECK_RUN_ID", str(run_id))

    run = tracking.attach(run_id, store=store)

    assert run.attached and not run.joined


def test_attach_outside_a_worker_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TUNEDECK_RUN_ID", raising=False)

    with pytest.raises(ValidationError, match="TUNEDECK_RUN_ID is not set"):
        tracking.attach()


def test_a_worker_owned_run_is_not_finished_by_the_script(store, make_experiment, make_run, monkeypatch):
    run_id = make_run(make_experiment(), status="running")
    monkeypatch.setenv("TUNEDECK_RUN_ID", str(run_id))

    with tracking.start_run(store=store) as run:
        run.log(1, {"loss": 0.5})

    assert store.get_run(run_id).status is RunStatus.RUNNING
    assert store.get_run(run_id).metrics["loss"].count == 1


@pytest.mark.parametrize("experiment", [3.5, ["x"], True])
def test_a_bad_experiment_reference_is_a_clear_error(store, experiment):
    with pytest.raises(ValidationError, match="experiment must be an ID or a name"):
        tracking.start_run(experiment, store=store)


@pytest.mark.parametrize("noticed_the_cancel", [True, False], ids=["heartbeat-saw-it", "found-on-completing"])
def test_an_adapter_registered_after_a_cancel_is_not_copied_into_the_data_dir(store, tmp_path_factory, noticed_the_cancel):
    """Cancelled from the dashboard while the script still ran: whether a heartbeat saw the cancel first or completing
    the run found it, leaving the block raises nothing (the cancel is not the script's error) and keeps no adapter."""
    adapter = tmp_path_factory.mktemp("saved-elsewhere")
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")

    with tracking.start_run("cancelled script", store=store) as run:
        store.cancel_run(run.id)
        if noticed_the_cancel:
            run.cancelled.set()  # what the heartbeat thread does once it sees the cancel
        run.register_adapter(adapter, base_model="gpt2")

    assert run.cancelled.is_set()  # either way the script is told to stop, as a heartbeat would tell it
    assert store.get_run(run.id).status is RunStatus.CANCELLED
    assert not (store.data_dir / "adapters" / f"run-{run.id}").exists()  # nor a copy made to complete it
    assert store.list_adapters() == []


def test_log_takes_the_metrics_first_and_the_step_as_a_keyword_as_in_mlflow_and_wandb(store):
    with tracking.start_run("familiar", store=store) as run:
        run.log({"loss": 0.9}, step=10)
        run.log({"loss": 0.8})  # no step: the one after the last logged
        run.log(20, {"loss": 0.5})  # the older order still works
        run.log({"loss": 0.4})

    series = store.get_run_metrics(run.id).series
    assert series.select("step", "value").rows() == [(10, 0.9), (11, 0.8), (20, 0.5), (21, 0.4)]


def test_log_without_a_step_follows_a_numpy_step(store):
    with tracking.start_run("numpy steps", store=store) as run:
        for step in np.arange(3, 6):
            run.log({"loss": 1.0 / step}, step=step)
        run.log({"loss": 0.1})

    assert store.get_run_metrics(run.id).series["step"].to_list() == [3, 4, 5, 6]


def test_log_without_any_step_counts_from_zero(store):
    with tracking.start_run("counting", store=store) as run:
        for loss in (3.0, 2.0, 1.0):
            run.log({"loss": loss})

    assert store.get_run_metrics(run.id).series["step"].to_list() == [0, 1, 2]


def test_threads_logging_without_a_step_each_get_a_step_of_their_own(store):
    """Two threads once took the same next step, and the later value replaced the earlier one without a word."""
    with tracking.start_run("threads", store=store) as run:
        threads = [threading.Thread(target=lambda: [run.log({"loss": 1.0}) for _ in range(500)]) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert store.get_run_metrics(run.id).series["step"].to_list() == list(range(2000))


@pytest.mark.parametrize(
    ("value", "said"),
    [(np.complex128(0.5 + 0.9j), "metric 'acc' must be a number, got complex128"), (10**400, "metric 'acc' is too large")],
    ids=["numpy complex", "huge int"],
)
def test_a_value_no_float_holds_is_refused_by_name(store, value, said):
    """A NumPy complex lost its imaginary part with only a warning; a huge int raised Python's OverflowError."""
    with tracking.start_run("odd values", store=store) as run:
        with pytest.raises(ValidationError, match=re.escape(said)):
            run.log({"acc": value}, step=1)
        run.log({"acc": 0.5}, step=2)

    assert store.get_run_metrics(run.id).series["step"].to_list() == [2]


def test_log_without_a_dict_is_a_clear_error(store):
    with tracking.start_run("confused", store=store) as run, pytest.raises(ValidationError, match="as a dict"):
        run.log(0.7, 3)


def test_a_logged_file_is_kept_with_the_run(store, tmp_path):
    report = tmp_path / "eval_report.json"
    report.write_text('{"accuracy": 0.9}')

    with tracking.start_run("with files", store=store) as run:
        kept = run.log_file(report)
        report.write_text("changed after logging")

    assert kept.read_text() == '{"accuracy": 0.9}'
    assert [path.name for path in run_files(store.data_dir, run.id)] == ["eval_report.json"]


def test_a_logged_file_goes_to_the_shared_artifact_root_where_every_machine_finds_it(store, tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.setenv("TUNEDECK_ARTIFACT_ROOT", str(shared))
    report = tmp_path / "eval_report.json"
    report.write_text('{"accuracy": 0.9}')

    with tracking.start_run("shared files", store=store) as run:
        kept = run.log_file(report)

    assert kept == shared / "files" / f"run-{run.id}" / "eval_report.json"
    assert [path.name for path in run_files(tmp_path / "another machine", run.id, shared)] == ["eval_report.json"]
    assert run_files(store.data_dir, run.id) == []


def test_files_kept_before_the_shared_root_was_set_are_still_listed(store, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (tmp_path / "report.txt").write_text("local")
    with tracking.start_run("files on both", store=store) as run:
        before = keep_file(tmp_path / "report.txt", store.data_dir, run.id)
        (tmp_path / "notes.txt").write_text("old")
        keep_file(tmp_path / "notes.txt", store.data_dir, run.id)
        (tmp_path / "report.txt").write_text("shared")
        after = keep_file(tmp_path / "report.txt", store.data_dir, run.id, shared)

    assert run_files(store.data_dir, run.id, shared) == [store.data_dir / "files" / f"run-{run.id}" / "notes.txt", after]
    assert before.read_text() == "local" and after.read_text() == "shared"


def test_a_file_is_not_kept_on_this_disk_when_the_shared_root_is_not_mounted(store, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEDECK_ARTIFACT_ROOT", str(tmp_path / "not mounted"))
    report = tmp_path / "eval_report.json"
    report.write_text("{}")

    with tracking.start_run("unmounted", store=store) as run, pytest.raises(StoreError, match="does not exist; mount"):
        run.log_file(report)

    assert not (tmp_path / "not mounted").exists()


def test_logging_a_missing_file_is_a_clear_error(store, tmp_path):
    with tracking.start_run("no file", store=store) as run, pytest.raises(ValidationError, match="no such file"):
        run.log_file(tmp_path / "missing.txt")


def test_log_adapter_registers_the_adapter_like_register_adapter(store, tmp_path):
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_model.safetensors").write_bytes(b"w")
    with tracking.start_run("adapter alias", store=store) as run:
        run.log_adapter(tmp_path / "adapter", base_model="gpt2")

    assert store.get_adapter(store.get_run(run.id).adapter.id).base_model == "gpt2"


def test_an_adapter_folder_holding_the_data_folder_is_refused_and_the_run_fails_saying_why(store):
    with pytest.raises(ValidationError, match="it holds TuneDeck's own files"):
        with tracking.start_run("whole data dir", store=store) as run:
            run.log_adapter(store.data_dir, base_model="gpt2")

    failed = store.get_run(run.id)
    assert failed.status is RunStatus.FAILED
    assert failed.error.startswith(f"cannot keep {store.data_dir.resolve()} as an adapter: it holds TuneDeck's own files")
    assert not (store.data_dir / "adapters" / f"run-{run.id}").exists()


def test_disabled_mode_turns_every_call_into_a_no_op_and_stores_nothing(store, monkeypatch, tmp_path):
    monkeypatch.setenv("TUNEDECK_MODE", "disabled")
    before = store.list_experiments(include_deleted=True).total

    with tracking.start_run("ci only", params={"lr": 0.1}, store=store) as run:
        run.log({"loss": 1.0}, step=1)
        run.log_params({"batch_size": 8})
        run.set_tags({"team": "nlp"})
        run.log_file(tmp_path / "not even there.txt")
        run.flush()
        assert not run.should_stop
        with pytest.raises(AttributeError, match="lgo"):
            run.lgo({"loss": 1.0})  # a typo fails in CI too, not first in the real training run
    assert tracking.attach().id is None

    assert store.list_experiments(include_deleted=True).total == before


def test_an_unknown_mode_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv("TUNEDECK_MODE", "offline-ish")
    with pytest.raises(Exception, match="online.*disabled"):
        tracking.start_run("x")


def test_an_ended_run_refuses_more_metrics_params_and_samples_but_takes_tags(store):
    with tracking.start_run("final results", store=store) as run:
        run.log({"loss": 0.2}, step=1)

    for late in (lambda: run.log({"loss": 5.0}, step=2), lambda: run.log_params({"lr": 1.0})):
        with pytest.raises(InvalidTransitionError, match=f"run {run.id} has ended: its results are final"):
            late()
    with tracking.attach(run.id, store=store) as again:  # leaving it records nothing: the run has its outcome
        with pytest.raises(InvalidTransitionError, match="has ended"):
            again.log({"loss": 5.0}, step=100)
        again.set_tags({"reviewed": "yes"})
    run.finish()  # again: nothing more to record either

    finished = store.get_run(run.id)
    assert finished.metrics["loss"].last == 0.2 and finished.config == {}
    assert finished.tags == {"reviewed": "yes"}


def test_finish_with_an_unknown_outcome_says_which_outcomes_there_are(store):
    run = tracking.start_run("outcomes", store=store)

    with pytest.raises(ValidationError, match="finish\\(\\) takes completed, failed or cancelled, not done"):
        run.finish("done")

    run.log({"loss": 0.4}, step=1)  # a refused finish leaves the run open: logging goes on, and finish() records
    run.finish()
    finished = store.get_run(run.id)
    assert finished.status is RunStatus.COMPLETED and finished.metrics["loss"].last == 0.4


def test_numpy_numbers_in_params_are_kept_as_the_numbers_written(store):
    """They were kept as text ("0.0003"), so the hyper-parameter charts put them on a category axis."""
    params = {
        "learning_rate": np.float32(3e-4),
        "batch_size": np.int64(8),
        "ranks": np.array([4, 8]),
        "dropouts": np.array([0.1, 0.05], dtype=np.float32),
        "precise": np.longdouble("1.5"),  # its tolist() is itself: JSON's encoder went round for ever
    }
    with tracking.start_run("numpy params", params=params, store=store) as run:
        run.log({"loss": 1.0}, step=1)

    config = store.get_run(run.id).config
    assert [config[name] for name in params] == [0.0003, 8, [4, 8], [0.1, 0.05], 1.5]


@pytest.mark.parametrize("raw", ["²", "١", "7 "])
def test_attach_takes_a_run_id_in_plain_digits_only(raw):
    """'١' (an Arabic-Indic one) attached to run 1; '²' raised Python's own ValueError."""
    with pytest.raises(ValidationError, match="run ID to attach to must be a positive whole number"):
        tracking.attach(raw)


def test_a_run_id_past_what_the_store_holds_is_refused_by_name(store):
    with pytest.raises(ValidationError, match="run ID 9223372036854775808 is larger than any ID TuneDeck gives out"):
        store.get_run(2**63)  # was the database's own conversion error, with its SQL


def test_a_param_json_has_no_form_for_is_kept_as_its_text(store, tmp_path):
    with tracking.start_run("params as text", params={"output": tmp_path, "odd": object()}, store=store) as run:
        run.log({"loss": 1.0}, step=1)

    config = store.get_run(run.id).config
    assert config["output"] == str(tmp_path) and config["odd"].startswith("<object object at")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({f"p{i}": i for i in range(1_001)}, "params: a run holds at most 1,000 params, and these are 1,001"),
        ({"k" * 251: 1}, "param name 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk'... is too long: at most 250 characters, and it has 251"),
        ({"prompt": "é" * 6_001}, "param 'prompt' is too long: a value is at most 6,000 characters, and this one has 6,001"),
    ],
    ids=["too many", "long name", "long value"],
)
def test_params_past_their_bounds_are_refused_with_the_bound_and_the_run_keeps_what_it_had(store, params, message):
    """One script's 100,000 params (or a 20 MB value) made every search table that wide: the Runs page took 18 s."""
    with tracking.start_run("bounded params", params={"lr": 0.1}, store=store) as run:
        with pytest.raises(ValidationError) as refused:
            run.log_params(params)

    assert str(refused.value) == message
    assert store.get_run(run.id).config == {"lr": 0.1}


def test_params_logged_a_call_at_a_time_stop_at_the_runs_bound(store):
    with tracking.start_run("many calls", store=store) as run:
        for start in range(0, 1_000, 500):
            run.log_params({f"p{i}": i for i in range(start, start + 500)})
        with pytest.raises(ValidationError, match="a run holds at most 1,000 params, and these would make 1,001"):
            run.log_params({"one_more": 1})

    assert len(store.get_run(run.id).config) == 1_000


def test_log_adapter_of_a_file_says_to_name_its_folder(store, tmp_path):
    report = tmp_path / "eval_report.json"
    report.write_text("{}")

    with tracking.start_run("adapter file", store=store) as run, pytest.raises(ValidationError, match="is a file: name the folder"):
        run.log_adapter(report)


def test_log_file_of_a_folder_says_it_is_a_folder(store, tmp_path):
    with tracking.start_run("files", store=store) as run, pytest.raises(ValidationError, match="it is a folder"):
        run.log_file(tmp_path)


def test_params_a_source_or_an_integration_gives_are_fitted_to_the_bounds_rather_than_refused():
    """What an importer and the Hugging Face callback keep: a long module list no longer stops training."""
    from core.run_params import fitting_params

    kept, left_out = fitting_params({"lr": 0.1, "lora_target_modules": [f"layers.{i}.q_proj" for i in range(400)]})

    assert kept == {"lr": 0.1}
    assert left_out == [
        "param 'lora_target_modules' is too long: a value is at most 6,000 characters, and this one has 7,891: left out"
    ]
