"""MLflow history comes in whole, from its SQLite store or its mlruns folder, and only once."""

import re
import shutil
import sqlite3
from datetime import datetime

import polars as pl
import pytest

from core.errors import ValidationError
from core.importers import mlflow
from core.importers.runs import SOURCE_PARAM, ImportSummary, import_runs
from core.status import RunStatus
from tests.conftest import snapshot
from tests.importers.conftest import EXPECTED, FIXTURES

RUNS = EXPECTED["mlflow"]["runs"]
STATUSES = {"FINISHED": RunStatus.COMPLETED, "FAILED": RunStatus.FAILED, "KILLED": RunStatus.CANCELLED}


def import_mlflow(store, uri: str) -> ImportSummary:
    summary = ImportSummary()
    return import_runs(store, mlflow.read(uri, summary.skipped), summary, dataset="(imported from MLflow)")


@pytest.fixture(params=["sqlite", "sqlite path", "mlruns folder"])
def source(request, mlflow_db) -> tuple[str, dict]:
    """A tracking URI of each kind and the MLflow run IDs the fixture script recorded for that store."""
    if request.param == "mlruns folder":
        return str(FIXTURES / "mlruns"), EXPECTED["mlflow"]["folder_ids"]
    uri = f"sqlite:///{mlflow_db}" if request.param == "sqlite" else str(mlflow_db)
    return uri, EXPECTED["mlflow"]["sqlite_ids"]


def imported_runs(store) -> dict[str, object]:
    page = store.list_experiments(page_size=100)
    return {run.name: run for experiment in page.items for run in store.list_runs(experiment.id)}


def test_experiments_runs_params_tags_and_statuses_come_across(store, source):
    uri, ids = source

    summary = import_mlflow(store, uri)

    assert sorted(e.name for e in store.list_experiments().items) == ["sentiment lora", "summaries"]
    runs = imported_runs(store)
    finished = {name for name, run in RUNS.items() if run["status"] in STATUSES}
    assert set(runs) == finished and summary.runs_imported == len(finished)
    for name in finished:
        want, run = RUNS[name], runs[name]
        assert store.get_experiment(run.experiment_id).name == want["experiment"]
        assert run.status is STATUSES[want["status"]]
        assert run.config == {
            **want["params"],
            SOURCE_PARAM: f"mlflow:{ids['runs'][name]}",
            "import.started_at": "2026-01-01T10:00:00+00:00",
        }
        assert run.tags == want["tags"]
    assert runs["lr-1e-2"].error == "FAILED in MLflow"


def test_runs_keep_their_own_start_and_end_so_dates_and_durations_are_mlflows(store, source):
    """The fixture's runs started at 10:00:00 and ended a minute later (2026-01-01, UTC), in both kinds of store."""
    import_mlflow(store, source[0])

    for run in imported_runs(store).values():
        assert (run.created_at, run.started_at, run.ended_at) == (
            datetime(2026, 1, 1, 10, 0, 0),
            datetime(2026, 1, 1, 10, 0, 0),
            datetime(2026, 1, 1, 10, 1, 0),
        ), run.name


def test_full_metric_histories_come_across_with_their_steps(store, source):
    uri, _ = source

    summary = import_mlflow(store, uri)

    runs = imported_runs(store)
    for name, run in runs.items():
        series = store.get_run_metrics(run.id).series
        for key, points in RUNS[name]["metrics"].items():
            got = series.filter(pl.col("key") == key).sort("step")
            assert got["step"].to_list() == [step for step, _ in points], (name, key)
            assert got["value"].to_list() == pytest.approx([value for _, value in points]), (name, key)
    assert summary.points_imported == sum(len(p) for n in runs for p in RUNS[n]["metrics"].values())
    assert runs["stopped early"].metrics["loss"].last == 0.75  # the step logged twice keeps its later value


def test_running_and_deleted_runs_are_skipped_with_the_reason(store, source):
    uri, ids = source

    summary = import_mlflow(store, uri)

    assert sorted(summary.skipped) == [
        f"run 'still going' (mlflow:{ids['runs']['still going']}): still RUNNING in MLflow; import again once it has ended",
        f"run {EXPECTED['mlflow']['deleted']!r} (mlflow:{ids['deleted']}): deleted in MLflow",
    ]
    assert "run 'lr-1e-2': left out 2 NaN or infinite values" in summary.notes
    assert "run 'stopped early': left out 1 point at a step logged again (the last value of each step is kept)" in summary.notes


def test_importing_again_adds_nothing(store, held, source):
    uri, _ = source
    import_mlflow(store, uri)
    before = snapshot(held)

    again = import_mlflow(store, uri)

    assert again.runs_imported == 0 and again.points_imported == 0 and again.experiments_created == []
    assert sum("already imported" in reason for reason in again.skipped) == 4
    after = snapshot(held)
    assert all(after[table].equals(rows) for table, rows in before.items())


def test_importing_again_after_renaming_an_imported_experiment_adds_nothing(store, mlflow_db):
    import_mlflow(store, f"sqlite:///{mlflow_db}")
    store.rename_experiment(store.find_experiment("summaries").id, "summaries (team)")

    again = import_mlflow(store, f"sqlite:///{mlflow_db}")

    assert (again.runs_imported, again.experiments_created) == (0, [])
    assert "runs of 'summaries' go into 'summaries (team)', where they were imported before" in again.notes
    assert sorted(e.name for e in store.list_experiments().items) == ["sentiment lora", "summaries (team)"]


def test_runs_go_into_an_existing_experiment_of_the_same_name(store, make_experiment, mlflow_db):
    experiment_id = make_experiment("summaries")

    summary = import_mlflow(store, str(mlflow_db))

    assert summary.experiments_created == ["sentiment lora"]
    assert [run.name for run in store.list_runs(experiment_id)] == ["baseline"]


def not_mlflow(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE things (id INTEGER)")
    return str(path)


def text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    return str(path)


def empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    return str(tmp_path / "empty")


@pytest.mark.parametrize(
    ("make_uri", "message"),
    [
        (lambda tmp: "http://localhost:5000", "give an MLflow SQLite database"),
        (lambda tmp: "postgresql://db/mlflow", "give an MLflow SQLite database"),
        (lambda tmp: str(tmp / "missing.db"), "does not exist"),
        (text_file, "is not an SQLite database"),
        (not_mlflow, "not an MLflow tracking store"),
        (empty_folder, "holds no MLflow experiments"),
        (lambda tmp: "sqlite://mlflow.db", r"sqlite://mlflow.db is not an SQLite URL: write sqlite:/// and the file"),
    ],
    ids=[
        "tracking server", "postgres", "missing file", "not sqlite", "sqlite but not mlflow", "empty folder",
        "two slashes",
    ],
)
def test_a_source_that_is_not_an_mlflow_store_is_refused_with_a_message_and_nothing_changes(
    store, unchanged, tmp_path, make_uri, message
):
    with pytest.raises(ValidationError, match=message):
        import_mlflow(store, make_uri(tmp_path))
    unchanged()


def test_a_full_path_after_three_slashes_is_told_it_takes_four(store, unchanged, tmp_path):
    """sqlite:///tmp/x.db is tmp/x.db in this folder, as MLflow reads it; the message said only "does not exist"."""
    with pytest.raises(ValidationError) as refused:
        import_mlflow(store, f"sqlite://{tmp_path}/mlflow.db")
    assert str(refused.value).startswith(
        f"{str(tmp_path)[1:]}/mlflow.db does not exist (sqlite:/// names a file in this folder; for {tmp_path}/mlflow.db "
        f"write sqlite:///{tmp_path}/mlflow.db); "
    )
    unchanged()


def damaged_db(tmp_path):
    path = tmp_path / "damaged.db"
    path.write_bytes(b"SQLite format 3\x00" + b"garbage" * 100)
    return str(path)


def test_a_damaged_sqlite_file_is_one_clear_error(store, unchanged, tmp_path):
    with pytest.raises(ValidationError, match="cannot be read as an SQLite database .*file is not a database"):
        import_mlflow(store, damaged_db(tmp_path))  # was sqlite3's own DatabaseError and its traceback
    unchanged()


def test_a_password_in_a_database_url_is_never_repeated(store, unchanged):
    with pytest.raises(ValidationError) as refused:
        import_mlflow(store, "postgresql://root:s3cret@db.internal/mlflow")
    assert "s3cret" not in str(refused.value) and "postgresql://root:***@db.internal/mlflow" in str(refused.value)
    unchanged()


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda run: _rewrite(run / "meta.yaml", r"status: \d", "status: FINISHED"), "could not be read (ValueError"),
        (lambda run: _rewrite(run / "meta.yaml", "run_id:", "other_id:"), "could not be read (KeyError: 'run_id')"),
        (lambda run: (run / "params" / "odd").write_bytes(b"\xff\xfe"), "could not be read (UnicodeDecodeError"),
        (lambda run: _append(next((run / "metrics").rglob("*")), "garbage line\n"), "its metrics could not be read (ValueError"),
        (lambda run: (run / "meta.yaml").write_bytes(b"run_id: \xff\n"), "could not be read (UnicodeDecodeError"),
    ],
    ids=["a word for a status", "no run id", "a param not in UTF-8", "a metric line of words", "a meta.yaml not in UTF-8"],
)
def test_one_damaged_run_folder_is_skipped_saying_why_and_the_others_come_across(store, tmp_path, damage, said):
    """Each stopped the whole import with a traceback."""
    shutil.copytree(FIXTURES / "mlruns", tmp_path / "mlruns")
    metas = sorted((tmp_path / "mlruns").glob("*/*/meta.yaml"))
    finished = [meta.parent for meta in metas if "status: 3" in meta.read_text() and "deleted" not in meta.read_text()]
    (finished[0] / "params").mkdir(exist_ok=True)
    damage(finished[0])

    summary = import_mlflow(store, str(tmp_path / "mlruns"))

    assert any(said in reason and reason.startswith("run") for reason in summary.skipped), summary.skipped
    assert not any(reason.startswith("experiment folder") for reason in summary.skipped)  # not its whole experiment
    assert summary.runs_imported == len(mlflow.read(str(FIXTURES / "mlruns"), [])) - 1  # every other run of its experiment too


def _rewrite(path, pattern: str, new: str) -> None:
    text, count = re.subn(pattern, new, path.read_text())
    assert count
    path.write_text(text)


def _append(path, text: str) -> None:
    with path.open("a") as file:
        file.write(text)


def test_a_tag_our_tags_cannot_hold_comes_across_as_a_param_with_a_note(store):
    long_value = "y" * 2_000
    run = mlflow._source_run(
        "abc", "tagged", "r1", "FINISHED", 0, {"lr": "0.1"},
        {"team": "nlp", "has space ok": "1", "bad/name!": "x", "long": long_value, "mlflow.user": "me"},
        dict, "sqlite:///mlflow.db",
    )  # fmt: skip
    summary = import_runs(store, [run], ImportSummary(), dataset="(imported from MLflow)")

    (imported,) = imported_runs(store).values()
    assert imported.tags == {"team": "nlp", "has space ok": "1"}
    assert imported.config["tags.bad/name!"] == "x" and imported.config["tags.long"] == long_value
    assert [note.rpartition("': ")[0] for note in summary.notes] == [
        "run 'r1': tag 'bad/name!' kept as the param 'tags.bad/name!",
        "run 'r1': tag 'long' kept as the param 'tags.long",
    ]


def test_an_mlruns_name_with_accents_and_an_emoji_reads_as_written(tmp_path):
    """MLflow's meta.yaml keeps non-ASCII text as it is and escapes an emoji (\\U0001F680) in double quotes."""
    meta = tmp_path / "meta.yaml"
    meta.write_text('name: "Ünïcode \\xe9xp 实验 \\U0001F680 \\"q\\""\nrun_name: rün 名前\n', encoding="utf-8")

    assert mlflow.read_meta(meta) == {"name": 'Ünïcode éxp 实验 🚀 "q"', "run_name": "rün 名前"}
