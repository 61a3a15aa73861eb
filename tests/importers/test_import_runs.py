"""What any importer's runs go through: points the store would refuse, names it cannot hold, an import that stops."""

import os
import signal
from datetime import datetime

import numpy as np
import pytest

from core.errors import ValidationError
from core.importers.runs import IMPORT_STOPPED, ImportSummary, Series, SourceRun, import_runs


def series(steps: list[int], values: list[float]) -> Series:
    return Series(np.array(steps, dtype=np.int64), np.array(values, dtype=np.float64), np.arange(len(steps)) * 1000)


def source_run(metrics: dict[str, Series], tags: dict[str, str] | None = None, run_id: str = "src:1") -> SourceRun:
    return SourceRun(
        source_id=run_id, experiment="history", name="r1", status="completed", params={"lr": 0.1},
        read_metrics=lambda: metrics, tags=tags or {},
    )  # fmt: skip


def imported(store):
    experiment = store.find_experiment("history")
    return store.list_runs(experiment.id)


def test_points_at_negative_steps_are_left_out_with_a_note_and_the_run_comes_in_whole(store):
    """MLflow and TensorBoard take step -1 (an evaluation before training, say); the store's steps start at 0."""
    run = source_run({"loss": series([-1, 0, 1, 2], [9.0, 3.0, 2.0, 1.0])})

    summary = import_runs(store, [run], ImportSummary(), dataset="(imported)")

    (stored,) = imported(store)
    assert stored.status == "completed"
    assert store.get_run_metrics(stored.id).of("loss")["step"].to_list() == [0, 1, 2]
    assert summary.points_imported == 3
    assert summary.notes == ["run 'r1': left out 1 point at a negative step"]


def test_what_an_import_leaves_out_of_a_run_is_said_by_reason(store):
    run = source_run({"loss": series([-1, 0, 1, 1, 2, 3, 3], [9.0, float("nan"), 2.0, 1.5, float("inf"), 1.0, 0.9])})

    summary = import_runs(store, [run], ImportSummary(), dataset="(imported)")

    (stored,) = imported(store)
    assert store.get_run_metrics(stored.id).of("loss")["value"].to_list() == [1.5, 0.9]  # steps 1 and 3, last values
    assert summary.notes == [
        "run 'r1': left out 2 NaN or infinite values, 1 point at a negative step, 2 points at a step logged again "
        "(the last value of each step is kept)"
    ]


def test_names_the_store_cannot_hold_become_distinct_keys_and_every_point_is_kept(store):
    metrics = {
        "损失": series([0, 1], [0.9, 0.8]),
        "精度": series([0, 1], [0.1, 0.2]),
        "acc (%)": series([0], [50.0]),
        "acc [%]": series([0], [60.0]),
        "métrique": series([0], [1.0]),
    }

    summary = import_runs(store, [source_run(metrics)], ImportSummary(), dataset="(imported)")

    (stored,) = imported(store)
    lasts = {key: summary_.last for key, summary_ in stored.metrics.items()}
    assert lasts == {"__": 0.8, "__-2": 0.2, "acc ___": 50.0, "acc ___-2": 60.0, "metrique": 1.0}
    assert summary.points_imported == 7 == sum(s.count for s in stored.metrics.values())
    assert "run 'r1': metric '精度' renamed '__-2' (keys allow unaccented letters, digits, _ . - / : @ and spaces)" in summary.notes


def test_an_import_that_stops_midway_leaves_no_run_running_and_the_next_import_brings_it_in(store):
    broken = source_run({"loss": series([0, 1], [2.0, 1.0])}, tags={"bad/name!": "x"})  # a tag the store refuses

    with pytest.raises(ValidationError):
        import_runs(store, [broken], ImportSummary(), dataset="(imported)")

    (stopped,) = imported(store)
    assert stopped.status == "failed" and stopped.error.startswith(IMPORT_STOPPED)

    summary = import_runs(store, [source_run({"loss": series([0, 1], [2.0, 1.0])})], ImportSummary(), dataset="(imported)")

    assert summary.runs_imported == 1 and not summary.skipped
    assert sorted(run.status for run in imported(store)) == ["completed", "failed"]


def ctrl_c_after(store, method: str, monkeypatch) -> None:
    """Ctrl-C pressed just as the store has done `method` (the answer on its way back), in the real store."""
    done = getattr(store, method)

    def pressed_then(*args, **kwargs):
        answer = done(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return answer

    monkeypatch.setattr(store, method, pressed_then)


def test_ctrl_c_as_a_run_is_made_leaves_it_failed_and_the_next_import_brings_it_in_whole(store, monkeypatch):
    """The interrupt cut the answer off: the run stayed queued with no points, and the next import called it imported."""
    ctrl_c_after(store, "create_run", monkeypatch)

    with pytest.raises(KeyboardInterrupt):
        import_runs(store, [source_run({"loss": series([0, 1], [2.0, 1.0])})], ImportSummary(), dataset="(imported)")
    monkeypatch.undo()

    (stopped,) = imported(store)
    assert stopped.status == "failed" and stopped.error.startswith(IMPORT_STOPPED)
    again = import_runs(store, [source_run({"loss": series([0, 1], [2.0, 1.0])})], ImportSummary(), dataset="(imported)")
    assert again.runs_imported == 1 and not again.skipped


def test_ctrl_c_as_a_run_completes_counts_it_among_the_imported(store, monkeypatch):
    """The summary said one run fewer than the store held, and the next import's count did not add up to the folder."""
    ctrl_c_after(store, "complete_run", monkeypatch)
    runs = [source_run({"loss": series([0], [1.0])}, run_id=f"src:{number}") for number in range(2)]
    summary = ImportSummary()

    with pytest.raises(KeyboardInterrupt):
        import_runs(store, runs, summary, dataset="(imported)")

    assert summary.runs_imported == 1 == len(imported(store))
    assert imported(store)[0].status == "completed" and imported(store)[0].started_at is not None


def test_a_run_without_times_of_its_own_spans_its_first_to_its_last_point(store):
    """TensorBoard keeps no start or end: the points' wall times say when the run went."""
    loss = Series(np.array([0, 1, 2]), np.array([3.0, 2.0, 1.0]), np.array([1_767_261_600_000, 1_767_261_630_000, 1_767_261_690_000]))

    import_runs(store, [source_run({"loss": loss})], ImportSummary(), dataset="(imported)")

    (stored,) = imported(store)
    assert (stored.started_at, stored.ended_at) == (datetime(2026, 1, 1, 10, 0, 0), datetime(2026, 1, 1, 10, 1, 30))
    assert stored.created_at == stored.started_at


def test_only_an_imported_run_that_has_ended_takes_a_sources_times(store, make_experiment, make_run):
    ordinary = make_run(make_experiment(), status="completed")

    with pytest.raises(ValidationError, match="not an imported run that has ended"):
        store.set_imported_times(ordinary, 1_767_261_600_000, 1_767_261_660_000)
    with pytest.raises(ValidationError, match="cannot end before it started"):
        store.set_imported_times(ordinary, 1_767_261_660_000, 1_767_261_600_000)
    with pytest.raises(ValidationError, match="whole milliseconds since 1970"):
        store.set_imported_times(ordinary, -5, None)


def test_a_renamed_experiment_takes_its_new_runs_too_even_when_a_new_one_comes_first(store):
    loss = {"loss": series([0, 1], [2.0, 1.0])}
    import_runs(store, [source_run(loss, run_id="src:2")], ImportSummary(), dataset="(imported)")
    store.rename_experiment(store.find_experiment("history").id, "history (team)")

    again = import_runs(
        store, [source_run(loss, run_id="src:1"), source_run(loss, run_id="src:2")], ImportSummary(), dataset="(imported)"
    )

    assert (again.runs_imported, again.experiments_created, len(again.skipped)) == (1, [], 1)
    assert [e.name for e in store.list_experiments().items] == ["history (team)"]


def test_importing_a_folder_again_says_in_one_line_that_its_runs_were_already_imported(store):
    runs = [source_run({"loss": series([0], [1.0])}, run_id=f"src:{number}") for number in range(5)]
    import_runs(store, runs, ImportSummary(), dataset="(imported)")

    again = import_runs(store, runs, ImportSummary(), dataset="(imported)")

    assert len(again.skipped) == 5  # one sentence a run, as before
    assert again.lines() == [
        "imported 0 runs with 0 metric points",
        "skipped 5 runs:",
        "  - 5 runs already imported: 'r1' (src:0), 'r1' (src:1), 'r1' (src:2) and 2 more",
    ]


def test_the_summary_lists_notes_under_their_own_heading():
    summary = ImportSummary(runs_imported=1, points_imported=3, notes=["runs of 'runs' go into 'my sweep', where they were imported before"])

    assert summary.lines() == [
        "imported 1 run with 3 metric points",
        "notes:",
        "  - runs of 'runs' go into 'my sweep', where they were imported before",
    ]


def test_a_run_skipped_for_its_own_reason_keeps_its_line_beside_the_already_imported_ones(store):
    summary = ImportSummary(skipped=["run 'a' (x:1): already imported", "run 'b' (x:2): already imported",
                                     "run 'c' (x:3): deleted in MLflow"])  # fmt: skip

    assert summary.lines()[1:] == [
        "skipped 3 runs:",
        "  - 2 runs already imported: 'a' (x:1), 'b' (x:2)",
        "  - run 'c' (x:3): deleted in MLflow",
    ]


def test_a_source_param_past_the_bounds_is_left_out_with_a_note_and_the_import_goes_on(store):
    """An MLflow param of 6,001 characters stopped the whole import, every time it was run again."""
    run = SourceRun(
        source_id="src:1", experiment="history", name="r1", status="completed",
        params={"lr": 0.1, "prompt": "x" * 6_001, "exact": "é" * 6_000}, read_metrics=lambda: {"loss": series([0], [1.0])},
    )  # fmt: skip

    summary = import_runs(store, [run], ImportSummary(), dataset="(imported)")

    (stored,) = imported(store)
    assert summary.runs_imported == 1
    assert stored.config["lr"] == 0.1 and stored.config["exact"] == "é" * 6_000 and "prompt" not in stored.config
    assert "run 'r1': param 'prompt' is too long: a value is at most 6,000 characters, and this one has 6,001: left out" in summary.notes


def test_an_import_that_finds_its_experiment_made_meanwhile_joins_it_and_skips_what_the_other_brought_in(store):
    """Two machines importing one folder: the second joined the experiment the first made, and imported its runs again."""

    def read_while_another_machine_imports():
        import_runs(store, [source_run({"loss": series([0], [1.0])})], ImportSummary(), dataset="(imported)")
        return {"loss": series([0], [1.0])}

    late = SourceRun(
        source_id="src:1", experiment="history", name="r1", status="completed", params={}, read_metrics=read_while_another_machine_imports
    )

    summary = import_runs(store, [late], ImportSummary(), dataset="(imported)")

    assert len(imported(store)) == 1
    assert summary.runs_imported == 0 and summary.skipped == ["run 'r1' (src:1): already imported"]
