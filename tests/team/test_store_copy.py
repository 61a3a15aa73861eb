"""`tunedeck store copy`: an embedded store up to PostgreSQL and back, everything kept, verified, safe to run again."""

import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import psycopg
import pytest

from core.duckdb_store import DuckDBStore
from core.entities import AdapterSpec
from core.errors import ConflictError, StoreError, ValidationError
from core.postgres_store import PostgresStore
from core.status import RunStatus
from core.store_copy import Checksum, copy_store
from tests.cli.conftest import ROOT, clean_env

SAMPLE = "data/sample/sentiment.csv"


def tunedeck(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tunedeck.cli", *args],
        cwd=ROOT,
        env=clean_env(tmp_path / "cli"),
        capture_output=True,
        text=True,
        timeout=180,
    )


def fill(store) -> None:
    """Experiments live and deleted, runs in every state, points, best metrics, an adapter and a log."""
    kept = store.create_experiment({"name": "kept", "dataset": SAMPLE, "description": "with 'quotes', commas\nand lines"})
    gone = store.create_experiment({"name": "gone", "dataset": SAMPLE})
    for experiment_id in (kept, gone):
        for outcome in ("completed", "failed", "queued"):
            run_id = store.create_run(experiment_id, {"learning_rate": 0.01, "note": outcome})
            steps = list(range(0, 300, 3))
            store.log_metrics(
                pl.DataFrame(
                    {
                        "run_id": run_id,
                        "key": "loss",
                        "step": steps,
                        "value": [1 / (s + 1) + run_id * 1e-9 for s in steps],
                        "wall_time": None,
                    }
                )
            )
            store.append_log(run_id, f"run {run_id} says hello\n")
            if outcome == "queued":
                continue
            store.mark_running(run_id, "w:1")
            if outcome == "completed":
                store.complete_run(
                    run_id, AdapterSpec(path=f"/adapters/run-{run_id}", base_model="tiny", size_bytes=10, checksum="sha256:x")
                )
            else:
                store.fail_run(run_id, "boom", traceback="Traceback ...")
    store.set_metric_direction(kept, "loss", "max")
    store.delete_experiment(gone)


def everything(store) -> dict:
    experiments = store.list_experiments(include_deleted=True, page_size=100).items
    runs = [run for experiment in experiments for run in store.list_runs(experiment.id)]
    run_ids = [run.id for run in runs]
    return {
        "experiments": [e.model_dump() for e in experiments],
        "runs": [run.model_dump() for run in runs],
        "points": store.get_metric_series(run_ids, max_points=None).to_dicts(),
        "adapters": [a.model_dump() for a in store.list_adapters()],
        "logs": [store.read_log(run_id) for run_id in run_ids],
    }


@pytest.fixture
def embedded(tmp_path):
    store = DuckDBStore(tmp_path / "embedded" / "tunedeck.duckdb")
    fill(store)
    expected = everything(store)
    store.close()
    return tmp_path / "embedded", expected


def test_a_store_goes_up_to_postgresql_and_back_with_everything_in_it(tmp_path, embedded, postgres_databases):
    folder, expected = embedded
    url = postgres_databases.fresh()

    up = tunedeck(tmp_path, "store", "copy", "--from", str(folder), "--to", url)
    assert up.returncode == 0, up.stderr
    assert "verified by row counts and checksums" in up.stdout and "metrics" in up.stdout
    assert up.stdout.rstrip().endswith("job queue tables ready")  # workers can start on the copy at once
    with psycopg.connect(url) as con:
        assert con.execute("SELECT to_regclass('huey_task')").fetchone()[0] is not None
    team = PostgresStore(url, tmp_path / "team")
    try:
        assert everything(team) == expected
        assert team.verify_integrity() == []
        with psycopg.connect(url) as con:  # the ended runs' curves sealed at once, as if they had ended here
            sealed = con.execute("SELECT run_id FROM sealed_curves ORDER BY 1").fetchall()
        ended = sorted(run["id"] for run in expected["runs"] if RunStatus(run["status"]).is_terminal)
        assert [run_id for (run_id,) in sealed] == ended
        for run_id in ended:
            curve = team.get_metric_series([run_id], ["loss"], max_points=None).to_dicts()
            assert curve == [point for point in expected["points"] if point["run_id"] == run_id]
        next_id = team.create_experiment({"name": "after the move", "dataset": SAMPLE})
        assert next_id == max(e["id"] for e in expected["experiments"]) + 1
        team.delete_experiment(next_id)  # so the copy back holds only what went up, plus this
        expected_back = everything(team)
    finally:
        team.close()

    back = tunedeck(tmp_path, "store", "copy", "--from", url, "--to", str(tmp_path / "back"))
    assert back.returncode == 0, back.stderr
    returned = DuckDBStore(tmp_path / "back" / "tunedeck.duckdb")
    try:
        assert everything(returned) == expected_back
        assert returned.verify_integrity() == []
    finally:
        returned.close()


def test_a_store_streams_through_in_chunks_and_arrives_whole(tmp_path, embedded, postgres_databases):
    folder, expected = embedded
    url = postgres_databases.fresh()
    sent: list[int] = []
    totals: list[int] = []

    def start(total: int):
        totals.append(total)
        return sent.append

    up = copy_store(str(folder), url, start, chunk_rows=7)
    assert max(sent) == 7 and sum(sent) == totals[0] == sum(t.rows for t in up.tables)
    assert len(sent) == sum(-(-table.rows // 7) for table in up.tables)  # each table in as few chunks of 7 as it takes
    back = copy_store(url, str(tmp_path / "back"), chunk_rows=1000)
    assert [(t.table, t.rows, t.checksum) for t in back.tables] == [(t.table, t.rows, t.checksum) for t in up.tables]
    returned = DuckDBStore(tmp_path / "back" / "tunedeck.duckdb")
    try:
        assert everything(returned) == expected
    finally:
        returned.close()


def test_a_checksum_ignores_order_and_chunks_but_not_a_changed_cell():
    rows = pl.DataFrame({"id": [1, 2, 3, 4], "name": ["a", None, "c", "d"], "value": [0.1, 0.2, None, 1e-9]})

    def checksum(*chunks: pl.DataFrame) -> tuple[int, str]:
        found = Checksum()
        for chunk in chunks:
            found.add(chunk)
        return found.rows, found.hexdigest()

    whole = checksum(rows)
    assert checksum(rows.reverse().slice(0, 3), pl.DataFrame(schema=rows.schema), rows.reverse().slice(3)) == whole
    assert checksum(rows.with_columns(pl.col("id").cast(pl.Int32))) == whole  # an engine's narrower integer
    assert checksum(rows.with_columns(value=pl.Series([0.1, 0.2, None, 2e-9]))) != whole
    assert checksum(rows.with_columns(name=pl.Series(["a", "", "c", "d"]))) != whole  # empty is not missing
    assert checksum(rows.slice(0, 3)) != whole


def test_copying_again_changes_nothing(tmp_path, embedded, postgres_databases):
    folder, expected = embedded
    url = postgres_databases.fresh()
    first = tunedeck(tmp_path, "store", "copy", "--from", str(folder), "--to", url)
    again = tunedeck(tmp_path, "store", "copy", "--from", str(folder), "--to", url)
    assert (first.returncode, again.returncode) == (0, 0), again.stderr
    assert first.stdout.splitlines()[1:] == again.stdout.splitlines()[1:]  # the same counts and checksums
    team = PostgresStore(url, tmp_path / "team")
    try:
        assert everything(team) == expected
    finally:
        team.close()


def test_a_destination_in_use_for_other_work_is_refused_and_left_alone(tmp_path, embedded, postgres_databases):
    folder, _ = embedded
    url = postgres_databases.fresh()
    team = PostgresStore(url, tmp_path / "team")
    try:
        team.create_experiment({"name": "the team's own", "dataset": SAMPLE})
        refused = tunedeck(tmp_path, "store", "copy", "--from", str(folder), "--to", url)
        assert refused.returncode == 1
        assert """already holds 1 experiment(s) that are not the source's ("the team's own")""" in refused.stderr
        assert [e.name for e in team.list_experiments(include_deleted=True).items] == ["the team's own"]
    finally:
        team.close()


@pytest.mark.parametrize("work", ["a run", "points in a copied run"])
def test_an_earlier_copy_that_was_worked_in_since_is_refused_and_keeps_that_work(
    tmp_path, embedded, postgres_databases, work
):
    folder, _ = embedded
    url = postgres_databases.fresh()
    assert tunedeck(tmp_path, "store", "copy", "--from", str(folder), "--to", url).returncode == 0
    team = PostgresStore(url, tmp_path / "team")
    try:
        kept = team.find_experiment("kept").id
        if work == "a run":  # the team went on working in the copy: a run in an experiment that came with it
            new = team.begin_run(kept, {"learning_rate": 0.7}, worker="team:1")
            expected = f"1 run(s) of its own (ID {new})"
        else:
            new = team.list_runs(kept)[0].id
            expected = f"more points logged in 1 run(s) (ID {new})"
        team.log_metrics(pl.DataFrame({"run_id": new, "key": "loss", "step": 10_000, "value": 0.3, "wall_time": None}))

        refused = tunedeck(tmp_path, "store", "copy", "--from", str(folder), "--to", url)

        assert refused.returncode == 1
        assert f"the destination holds work the source does not: {expected}" in refused.stderr
        assert team.get_run_metrics(new).of("loss")["step"].to_list()[-1] == 10_000  # still there
    finally:
        team.close()


@pytest.mark.parametrize("work", ["a point rewritten", "a sample logged", "a log line", "a run failed"])
def test_an_earlier_copy_changed_in_place_since_is_refused_and_keeps_that_change(tmp_path, embedded, postgres_databases, work):
    """Work that adds no run and no point: each copied table's count and checksum, marked by the copy, say it
    changed (a second copy overwrote it without a word)."""
    folder, _ = embedded
    url = postgres_databases.fresh()
    copy_store(str(folder), url)
    team = PostgresStore(url, tmp_path / "team")
    try:
        runs = team.list_runs(team.find_experiment("kept").id)
        done = next(run.id for run in runs if run.status.value == "completed")
        queued = next(run.id for run in runs if run.status.value == "queued")
        if work == "a point rewritten":
            team.log_metrics(pl.DataFrame({"run_id": done, "key": "loss", "step": 3, "value": 99.0, "wall_time": None}))
        elif work == "a sample logged":
            team.log_samples(done, 1, [{"example_id": 1, "input": "great film", "prediction": "positive"}])
        elif work == "a log line":
            team.append_log(done, "checked by the team\n")
        else:
            team.fail_run(queued, "failed by the team's reaper")
        table = {"a point rewritten": "points", "a sample logged": "samples", "a log line": "run logs", "a run failed": "runs"}
        before = (team.get_metric_series([done], max_points=None), team.get_samples([done]), team.read_log(done), team.get_run(queued))

        with pytest.raises(ConflictError, match="the destination holds work the source does not: ") as refused:
            copy_store(str(folder), url)
        assert f"{table[work]} changed since the last copy" in str(refused.value)

        after = (team.get_metric_series([done], max_points=None), team.get_samples([done]), team.read_log(done), team.get_run(queued))
        assert after[0].equals(before[0]) and after[1].equals(before[1]) and after[2:] == before[2:]
    finally:
        team.close()


def annotate(store) -> None:
    """A tag, a note and an alias, as a team sets them."""
    kept = store.find_experiment("kept").id
    store.set_tags("experiment", kept, {"owner": "team"})
    store.set_note("experiment", kept, "agreed with the team")
    store.set_adapter_alias(store.list_adapters()[0].id, "production")


def annotated_copy(folder, postgres_databases) -> str:
    """The embedded store annotated, then copied up: the copy's URL."""
    source = DuckDBStore(folder / "tunedeck.duckdb")
    annotate(source)
    source.close()
    url = postgres_databases.fresh()
    copy_store(str(folder), url)
    return url


@pytest.mark.parametrize("work", ["a tag added", "a tag removed", "a note edited", "an alias removed"])
def test_an_earlier_copy_annotated_since_is_refused_and_keeps_what_was_written(tmp_path, embedded, postgres_databases, work):
    folder, _ = embedded
    url = annotated_copy(folder, postgres_databases)
    team = PostgresStore(url, tmp_path / "team")
    try:
        kept = team.find_experiment("kept").id
        if work == "a tag added":
            team.set_tags("experiment", kept, {"stage": "review"})
        elif work == "a tag removed":
            team.remove_tags("experiment", kept, ["owner"])
        elif work == "a note edited":
            team.set_note("experiment", kept, "agreed, then changed")
        else:
            team.remove_adapter_alias(team.list_adapters()[0].name, "production")
        changed = {"a tag added": "tag(s)", "a tag removed": "tag(s)", "a note edited": "note(s)", "an alias removed": "alias(es)"}
        expected = f"{changed[work]} changed since the last copy"
        before = (team.get_experiment(kept).model_dump(), team.list_adapter_aliases())

        with pytest.raises(ConflictError, match=re.escape(f"the destination holds work the source does not: {expected}")):
            copy_store(str(folder), url)

        assert (team.get_experiment(kept).model_dump(), team.list_adapter_aliases()) == before
    finally:
        team.close()


def test_tags_notes_and_aliases_removed_in_the_source_go_with_the_next_copy(tmp_path, embedded, postgres_databases):
    folder, _ = embedded
    url = annotated_copy(folder, postgres_databases)
    source = DuckDBStore(folder / "tunedeck.duckdb")
    kept = source.find_experiment("kept").id
    source.remove_tags("experiment", kept, ["owner"])
    source.set_note("experiment", kept, "")
    source.remove_adapter_alias(source.list_adapters()[0].name, "production")
    source.close()

    copy_store(str(folder), url)  # the team's copy did nothing since: it follows the source

    team = PostgresStore(url, tmp_path / "team")
    try:
        experiment = team.get_experiment(team.find_experiment("kept").id)
        assert (experiment.tags, experiment.note, team.list_adapter_aliases()) == ({}, "", [])
    finally:
        team.close()


@pytest.mark.parametrize("typed", ["postgresq://owner:s3cret@db.internal:5432/td", "postgresql:/owner:s3cret@db/td", "postgresql+psycopg://owner:s3cret@db/td"])
def test_a_mistyped_url_is_refused_not_taken_for_a_folder(tmp_path, embedded, typed, monkeypatch):
    """It made folders named after the URL, password and all, copied the store into them and said it was done."""
    folder, _ = embedded
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError, match="is neither a postgresql:// URL nor a folder") as refused:
        copy_store(str(folder), typed)
    assert "s3cret" not in str(refused.value) and "***" in str(refused.value)
    assert not any(tmp_path.glob("postgres*"))


def test_a_destination_folder_that_cannot_be_made_is_one_clear_error(tmp_path, embedded):
    folder, _ = embedded
    (tmp_path / "notes.txt").write_text("a file where a folder would go")

    with pytest.raises(StoreError, match="cannot make the store's folder .*notes.txt/sub: Not a directory"):
        copy_store(str(folder), str(tmp_path / "notes.txt" / "sub"))  # was NotADirectoryError and its traceback


@pytest.mark.parametrize("side", ["to", "from"])
def test_an_empty_place_is_refused_not_taken_for_the_working_folder(tmp_path, embedded, monkeypatch, side):
    """`--to ''` copied the store into the working folder, and said nothing of it."""
    folder, _ = embedded
    monkeypatch.chdir(tmp_path)
    places = {"from": str(folder), "to": str(tmp_path / "copy"), side: ""}

    with pytest.raises(ValidationError, match="name a data folder, a .duckdb file or a postgresql:// URL"):
        copy_store(places["from"], places["to"])
    assert not (tmp_path / "tunedeck.duckdb").exists()


def test_an_sqlite_file_as_the_source_is_named_for_what_it_is(tmp_path):
    (tmp_path / "mlflow.db").write_bytes(b"SQLite format 3\x00" + bytes(100))

    with pytest.raises(StoreError, match="mlflow.db is an SQLite database, not a TuneDeck store"):
        copy_store(str(tmp_path / "mlflow.db"), str(tmp_path / "copy"))  # DuckDB tried to download its SQLite reader


def test_a_missing_source_is_a_clear_error(tmp_path):
    result = tunedeck(tmp_path, "store", "copy", "--from", str(tmp_path / "nowhere"), "--to", str(tmp_path / "x"))
    assert result.returncode == 1
    assert f"there is no TuneDeck store at {tmp_path / 'nowhere'}" in result.stderr


def test_a_copy_back_leaves_no_curve_overview_that_the_new_points_do_not_fit(tmp_path, postgres_databases):
    folder = tmp_path / "embedded"
    store = DuckDBStore(folder / "tunedeck.duckdb")
    run_id = store.create_run(store.create_experiment({"name": "long", "dataset": SAMPLE}), {"learning_rate": 0.01})
    store.mark_running(run_id, "w:1")
    steps = list(range(3_000))
    values = [1 / (s + 1) for s in steps]
    store.log_metrics(pl.DataFrame({"run_id": run_id, "key": "loss", "step": steps, "value": values, "wall_time": None}))
    store.complete_run(run_id)
    store.build_overviews()  # kept downsampled (core.overviews), valid while the count and last step stay
    store.close()
    url = postgres_databases.fresh()
    copy_store(str(folder), url)
    team = PostgresStore(url, tmp_path / "team")
    try:  # the team rewrites a step of the copied run: same count, same last step, another value
        team.log_metrics(pl.DataFrame({"run_id": run_id, "key": "loss", "step": [1_500], "value": [1e6], "wall_time": None}))
    finally:
        team.close()

    copy_store(url, str(folder))

    back = DuckDBStore(folder / "tunedeck.duckdb")
    try:
        assert back.get_metric_series([run_id], ["loss"], max_points=100)["value"].max() == 1e6
    finally:
        back.close()


def test_a_destination_that_cannot_be_opened_leaves_the_source_free(tmp_path, embedded):
    folder, expected = embedded
    not_a_store = tmp_path / "notes.duckdb"
    not_a_store.write_text("these are notes, not a store")

    with pytest.raises(StoreError, match="not a valid DuckDB database file"):
        copy_store(str(folder), str(not_a_store))

    source = DuckDBStore(folder / "tunedeck.duckdb")  # the failed copy closed it: this process may open it again
    try:
        assert everything(source) == expected
    finally:
        source.close()


def test_a_folder_and_its_own_store_file_are_the_same_store(tmp_path, embedded):
    folder, _ = embedded

    with pytest.raises(ConflictError, match="the source and the destination are the same store"):
        copy_store(str(folder), str(folder / "tunedeck.duckdb"))


def test_a_copy_url_with_an_unencoded_password_is_named_as_the_copys_and_not_shown(tmp_path, embedded):
    folder, _ = embedded

    with pytest.raises(ValidationError) as refused:
        copy_store(str(folder), "postgresql://owner:my #hunter2@db/tunedeck")

    assert "the password in the copy's destination holds a character" in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_a_copy_back_and_forth_follows_the_work_wherever_it_was_done(tmp_path, embedded):
    """A tag removed in the copy goes back with a copy back, and a tag added there and copied back lets the next copy
    out go on: each copy leaves both stores marked with what they then hold."""
    folder, _ = embedded
    source = DuckDBStore(folder / "tunedeck.duckdb")
    annotate(source)
    source.close()
    copy = tmp_path / "copy"
    copy_store(str(folder), str(copy))

    there = DuckDBStore(copy / "tunedeck.duckdb")
    kept = there.find_experiment("kept").id
    there.remove_tags("experiment", kept, ["owner"])
    there.set_tags("experiment", kept, {"stage": "review"})
    there.close()
    copy_store(str(copy), str(folder))  # the work done in the copy comes back
    copy_store(str(folder), str(copy))  # and the next copy out finds nothing of the copy's own to lose

    back = DuckDBStore(folder / "tunedeck.duckdb")
    try:
        assert back.get_experiment(back.find_experiment("kept").id).tags == {"stage": "review"}
    finally:
        back.close()


def test_a_copy_made_before_copies_left_marks_still_keeps_a_tag_added_there(tmp_path, embedded):
    folder, _ = embedded
    copy = tmp_path / "copy"
    copy_store(str(folder), str(copy))
    there = DuckDBStore(copy / "tunedeck.duckdb")
    there._write(lambda con: con.execute("DELETE FROM copy_marks"))  # as an older TuneDeck's copy left it
    there.set_tags("experiment", there.find_experiment("kept").id, {"owner": "team"})
    there.close()

    with pytest.raises(ConflictError, match=re.escape("1 tag(s) the source does not have (owner)")):
        copy_store(str(folder), str(copy))
