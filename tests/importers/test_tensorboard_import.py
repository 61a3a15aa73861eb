"""TensorBoard scalars come across per run folder, as PyTorch and TensorFlow 2 write them, and only once."""

import shutil
import struct

import numpy as np
import pytest

from core.errors import ValidationError
from core.importers import tensorboard
from core.importers.runs import SOURCE_PARAM, ImportSummary, Series, clean_series, import_runs
from core.importers.tfrecord import masked_crc32c
from core.status import RunStatus
from tests.conftest import snapshot
from tests.importers.conftest import EXPECTED

RUNS = EXPECTED["tensorboard"]["runs"]


def import_logs(store, logdir, experiment=None) -> ImportSummary:
    summary = ImportSummary()
    return import_runs(store, tensorboard.read(logdir, experiment), summary, dataset="(imported from TensorBoard)")


def series_of(store, run_id: int) -> dict[str, list[list[float]]]:
    frame = store.get_run_metrics(run_id).series.sort("key", "step")
    return {key: rows.select("step", "value").rows() for (key,), rows in frame.group_by("key", maintain_order=True)}


def test_each_folder_of_event_files_is_a_completed_run_with_its_scalars(store, tensorboard_logdir):
    summary = import_logs(store, tensorboard_logdir)

    (experiment,) = store.list_experiments().items
    assert experiment.name == "tensorboard" and summary.experiments_created == ["tensorboard"]
    runs = {run.name: run for run in store.list_runs(experiment.id)}
    assert set(runs) == set(RUNS)
    for name, metrics in RUNS.items():
        run = runs[name]
        assert run.status is RunStatus.COMPLETED
        assert run.config == {SOURCE_PARAM: f"tensorboard:{tensorboard_logdir / name}"}
        got = series_of(store, run.id)
        assert set(got) == set(metrics), name
        for key, points in metrics.items():
            assert [step for step, _ in got[key]] == [step for step, _ in points], (name, key)
            assert [value for _, value in got[key]] == pytest.approx([v for _, v in points], rel=1e-6), (name, key)  # float32
    assert summary.points_imported == sum(len(points) for metrics in RUNS.values() for points in metrics.values())


def test_histograms_non_finite_values_and_odd_tags_are_reported(store, tensorboard_logdir):
    summary = import_logs(store, tensorboard_logdir)

    assert summary.notes == [
        "run 'train': 'weights' is not a scalar (histogram)",
        "run 'train': metric 'loss (smoothed)' renamed 'loss _smoothed_' (keys allow unaccented letters, digits, _ . - / : @ and spaces)",
        "run 'train': left out 1 NaN or infinite value",
    ]


def test_importing_again_adds_nothing(store, held, tensorboard_logdir):
    import_logs(store, tensorboard_logdir, "tb")
    before = snapshot(held)

    again = import_logs(store, tensorboard_logdir, "tb")

    assert again.runs_imported == 0 and len(again.skipped) == len(RUNS)
    assert all(reason.endswith("already imported") for reason in again.skipped)
    after = snapshot(held)
    assert all(after[table].equals(rows) for table, rows in before.items())


def test_a_file_cut_short_by_a_writer_still_at_work_gives_the_records_before_the_cut(store, tensorboard_logdir):
    (event_file,) = (tensorboard_logdir / "eval").iterdir()
    event_file.write_bytes(event_file.read_bytes()[:-10])

    import_logs(store, tensorboard_logdir)

    (experiment,) = store.list_experiments().items
    (run,) = [run for run in store.list_runs(experiment.id) if run.name == "eval"]
    assert [step for step, _ in series_of(store, run.id)["accuracy"]] == [10, 20]


def test_a_file_not_readable_to_its_end_is_reported_with_where_it_stopped(store, tensorboard_logdir):
    (event_file,) = (tensorboard_logdir / "eval").iterdir()
    whole = event_file.read_bytes()
    event_file.write_bytes(whole[:-10])

    summary = import_logs(store, tensorboard_logdir)

    [note] = [note for note in summary.notes if note.startswith("run 'eval'")]
    assert f"{event_file.name} was read up to byte" in note and f"of {len(whole) - 10:,}" in note
    assert note.endswith("the rest is damaged, or was still being written")


def test_a_record_whose_body_is_damaged_skips_its_run_saying_why_and_the_others_come_across(store, tensorboard_logdir):
    """A record with a sound frame but a damaged body reached the parser: 'unsupported protobuf wire type 7' stopped
    the whole import with a traceback, good runs and all."""
    header = struct.pack("<Q", 1)
    body = header + struct.pack("<I", masked_crc32c(header)) + b"\x0f" + b"\x00" * 4
    (tensorboard_logdir / "train" / "events.out.tfevents.9999999999.damaged").write_bytes(body)

    summary = import_logs(store, tensorboard_logdir)

    [reason] = [reason for reason in summary.skipped if "'train'" in reason]
    assert "its metrics could not be read (ValueError: unsupported protobuf wire type 7)" in reason
    assert summary.runs_imported == len(RUNS) - 1


def test_importing_a_run_again_after_its_file_grew_says_the_new_points_were_not_added(store, tensorboard_logdir):
    (event_file,) = (tensorboard_logdir / "eval").iterdir()
    whole = event_file.read_bytes()
    event_file.write_bytes(whole[:-10])  # the writer was still at work
    first = import_logs(store, tensorboard_logdir, "tb")
    event_file.write_bytes(whole)  # and went on

    again = import_logs(store, tensorboard_logdir, "tb")

    [eval_run] = [reason for reason in again.skipped if reason.startswith("run 'eval'")]
    imported = sum(len(points) for points in RUNS["eval"].values()) - 1
    assert first.points_imported == sum(len(p) for m in RUNS.values() for p in m.values()) - 1
    assert f"already imported, with {imported} points; its files now hold {imported + 1}" in eval_run
    assert "import the folder into another experiment (--experiment)" in eval_run
    assert all(reason.endswith("already imported") for reason in again.skipped if reason != eval_run)


def test_a_folder_whose_files_hold_no_readable_record_is_not_imported(store, unchanged, tmp_path):
    logdir = tmp_path / "broken"
    (logdir / "r1").mkdir(parents=True)
    (logdir / "r1" / "events.out.tfevents.1.host.1.0").write_bytes(np.random.default_rng(0).bytes(5000))

    summary = import_logs(store, logdir)

    assert summary.runs_imported == 0 and summary.experiments_created == []
    [reason] = summary.skipped
    assert reason.startswith("run 'r1' (tensorboard:") and "no metric point could be read" in reason
    assert "was read up to byte 0 of 5,000 (0 records)" in reason
    unchanged()


def test_event_files_at_the_top_of_the_log_folder_are_one_run_named_after_it(store, tensorboard_logdir, tmp_path):
    flat = tmp_path / "flat-run"
    shutil.copytree(tensorboard_logdir / "tf2", flat)

    import_logs(store, flat)

    (experiment,) = store.list_experiments().items
    assert [run.name for run in store.list_runs(experiment.id)] == ["flat-run"]


@pytest.mark.parametrize(
    ("make_logdir", "message"),
    [
        (lambda tmp: tmp / "missing", "is not a folder"),
        (lambda tmp: tmp, "holds no TensorBoard event files"),
    ],
    ids=["missing", "no event files"],
)
def test_a_folder_without_event_files_is_refused_with_a_message(store, unchanged, tmp_path, make_logdir, message):
    (tmp_path / "notes.txt").write_text("not an event file")
    with pytest.raises(ValidationError, match=message):
        import_logs(store, make_logdir(tmp_path))
    unchanged()


def test_series_cleaning_keeps_finite_values_and_the_last_value_of_each_step():
    raw = Series(np.array([3, 1, 1, 2, 4]), np.array([0.3, 0.1, 0.15, np.nan, np.inf]), np.array([5, 1, 2, 3, 4]))

    kept, dropped = clean_series(raw)

    assert kept.steps.tolist() == [1, 3] and kept.values.tolist() == [0.15, 0.3] and kept.wall_ms.tolist() == [2, 5]
    assert dropped == {"non_finite": 2, "repeated": 1}
