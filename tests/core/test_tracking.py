"""The tracking SDK from a script's point of view."""

import pytest

from core import tracking
from core.errors import InvalidTransitionError, ValidationError
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
    kept = store.path.parent / "adapters" / f"run-{run.id}"
    assert registered.path == str(kept)
    assert (kept / "adapter_model.safetensors").read_bytes() == b"weights"
    assert store.get_experiment(finished.experiment_id).name == "my script"


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


@pytest.mark.parametrize("noticed_the_cancel", [True, False])
def test_an_adapter_registered_after_a_cancel_is_not_copied_into_the_data_dir(store, tmp_path_factory, noticed_the_cancel):
    adapter = tmp_path_factory.mktemp("saved-elsewhere")
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    run = tracking.start_run("cancelled script", store=store)
    store.cancel_run(run.id)
    if noticed_the_cancel:
        run.cancelled.set()  # what the heartbeat thread does once it sees the cancel

    run.register_adapter(adapter, base_model="gpt2")
    try:
        run.__exit__(None, None, None)
    except InvalidTransitionError:
        assert not noticed_the_cancel  # completing a cancelled run is refused, as before

    assert store.get_run(run.id).status is RunStatus.CANCELLED
    assert not (store.path.parent / "adapters" / f"run-{run.id}").exists()
    assert store.list_adapters() == []
