"""AppTest fixtures: the real app.py on a store in a temp data directory."""

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import open_store
from core.duckdb_store import DuckDBStore
from core.writer import MetricWriter
from tests.apptest import scan_components_once
from tests.stores import serving

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = str(ROOT / "data" / "sample" / "sentiment.csv")
scan_components_once()


@pytest.fixture
def app_store(tmp_path, monkeypatch, migrated_file):
    """The store in a fresh data directory, served from a thread of the test process: the pages' open_store() reach
    it over the real socket and transport as they would a store server process, without starting one per test
    (1.5 s each)."""
    monkeypatch.setenv("TUNEDECK_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(ROOT)
    shutil.copyfile(migrated_file, tmp_path / "tunedeck.duckdb")
    held = DuckDBStore(tmp_path / "tunedeck.duckdb")
    try:
        with serving(held):
            yield open_store()
    finally:
        held.close()


@pytest.fixture
def open_page(app_store):
    """Run app.py on one page with the given query parameters, and with the folds (expanders, by key) in `opened`
    open as a click leaves them; fails on any exception, caught or not."""

    def run(page: str, /, opened: tuple[str, ...] = (), **params: str) -> AppTest:
        app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
        for name, value in params.items():
            app.query_params[name] = value
        for key in opened:
            app.session_state[key] = True
        app.switch_page(page)
        app.run()
        assert not app.exception, [e.value for e in app.exception]
        assert not [e.value for e in app.error if "Something went wrong" in e.value], "the page hit an unexpected error"
        return app

    return run


@pytest.fixture
def populated(app_store, tmp_path):
    """An experiment with a completed run (adapter and metrics), a failed run and a queued run."""
    store = app_store
    experiment_id = store.create_experiment({"name": "sentiment LoRA", "dataset": SAMPLE})
    done, failed, queued = (store.create_run(experiment_id, {"learning_rate": lr, "epochs": 2}) for lr in (0.01, 0.05, 0.1))
    with MetricWriter(store) as writer:
        for run_id in (done, failed):
            writer.log_series(run_id, "loss", range(1, 51), [1.0 / step for step in range(1, 51)])
            writer.log_series(run_id, "eval_loss", [10, 20, 30, 40, 50], [0.9, 0.7, 0.5, 0.4, 0.35 if run_id == done else 0.6])
    adapter_dir = tmp_path / "adapters" / f"run-{done}"
    adapter_dir.mkdir(parents=True)
    (adapter_dir / "adapter_config.json").write_text("{}")
    for run_id in (done, failed):
        store.mark_running(run_id, worker="host:1")
    adapter = store.complete_run(
        done, {"path": str(adapter_dir), "base_model": "tiny-base", "size_bytes": 2, "checksum": "sha256:x"}
    )
    store.fail_run(failed, "ValueError: learning rate too high", traceback="Traceback...\nValueError: learning rate too high")
    return {"experiment": experiment_id, "done": done, "failed": failed, "queued": queued, "adapter": adapter.id}
