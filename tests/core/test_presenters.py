"""What tables and headers show: plurals, ticking durations, diverged and best marks, progress, no 'None'."""

import re
from datetime import datetime, timedelta

import polars as pl
import pytest

from core.presenters import (
    SETTLING_SECONDS,
    adapter_mark,
    best_adapters,
    comparison_table,
    dataset_shown,
    escape_markdown,
    escape_outside_code,
    format_value,
    groups_frame,
    latest_metrics,
    parse_run_ids,
    plural,
    run_progress,
    runs_frame,
    safe_markdown,
    spread,
    still_changing,
    worker_caption,
    workers_training,
)


@pytest.mark.parametrize(
    ("count", "text"), [(0, "0 experiments"), (1, "1 experiment"), (2, "2 experiments"), (10_000, "10,000 experiments")]
)
def test_counts_read_in_the_singular_or_plural(count, text):
    assert plural(count, "experiment") == text


def test_a_running_runs_duration_counts_up_to_now(store, make_experiment, make_run):
    run = store.get_run(make_run(make_experiment(), status="running"))

    frame = runs_frame([run], now=run.started_at + timedelta(seconds=75))

    assert frame["duration"].to_list() == ["1m 15s"]


def test_the_runs_table_flags_diverged_runs_and_leaves_empty_cells_blank(store, make_experiment, make_run):
    experiment_id = make_experiment()
    done = make_run(experiment_id, metrics={"loss": [1.0, 9.0]})
    queued = make_run(experiment_id, status="queued", config={"learning_rate": 0.5})
    runs = store.get_runs([done, queued])

    frame = runs_frame(runs, diverged={done})

    assert frame["status"].to_list() == ["completed · diverged", "queued"]
    assert frame["adapter"].to_list() == ["", ""]
    assert "learning_rate" in frame.columns  # it differs between the runs
    assert "epochs" not in frame.columns


def test_the_comparison_table_marks_the_best_run_of_each_metric_and_shows_a_missing_value_as_a_dash(
    store, make_experiment, make_run
):
    experiment_id = make_experiment()
    low = make_run(experiment_id, metrics={"eval_loss": [0.61234], "eval_accuracy": [0.7]})
    high = make_run(experiment_id, metrics={"eval_loss": [0.9], "eval_accuracy": [0.8]})
    bare = make_run(experiment_id)

    table = comparison_table(store.compare_runs([low, high, bare])).to_dicts()

    by_metric = {row["metric"]: row for row in table}
    names = {run.id: f"{run.name} (#{run.id})" for run in store.get_runs([low, high, bare])}
    assert table[0]["metric"] == "run status" and [table[0][names[i]] for i in (low, high, bare)] == ["completed"] * 3
    assert by_metric["eval_loss"]["better"] == "↓ lower"
    assert by_metric["eval_loss"]["best run"] == names[low]
    assert [by_metric["eval_loss"][names[i]] for i in (low, high, bare)] == ["★ 0.6123", "0.9", "–"]
    assert by_metric["eval_accuracy"]["best run"] == names[high]
    assert [by_metric["eval_accuracy"][names[i]] for i in (low, high, bare)] == ["0.7", "★ 0.8", "–"]
    marked = comparison_table(store.compare_runs([low, high, bare]), diverged={high}).to_dicts()[0]
    assert [marked[names[i]] for i in (low, high, bare)] == ["completed", "completed ⚠", "completed"]


def test_the_runs_table_shows_a_drawn_learning_rate_to_four_digits_as_its_metrics(store, make_experiment, make_run):
    """A random search's 0.005615727697377854 pushed the other settings off the page."""
    experiment_id = make_experiment()
    runs = store.get_runs([make_run(experiment_id, config={"learning_rate": rate}) for rate in (0.005615727697377854, 2e-4)])

    assert runs_frame(runs)["learning_rate"].to_list() == ["0.005616", "0.0002"]


def test_the_runs_table_shortens_long_names_in_the_middle_so_sweep_runs_stay_apart(store, make_experiment, make_run):
    """A small column read "rank-64-cos" for every run of a sweep: their names differ at the end."""
    experiment_id = make_experiment()
    names = [f"rank-64-cosine-very-long-run-name-for-table-width-check-{index}" for index in range(2)]
    runs = store.get_runs([store.create_run(experiment_id, {}, name=name) for name in names])

    shown = runs_frame(runs)["run"].to_list()

    assert shown == ["rank-64-cosine-…le-width-check-0", "rank-64-cosine-…le-width-check-1"]
    assert all(len(name) == 32 for name in shown)


def test_the_runs_table_leaves_out_config_that_all_runs_share(store, make_experiment, make_run):
    experiment_id = make_experiment()
    runs = store.get_runs([make_run(experiment_id), make_run(experiment_id)])

    assert "learning_rate" not in runs_frame(runs).columns


def test_the_best_adapter_of_each_experiment_is_the_one_its_best_run_trained(store, make_experiment, make_run, tmp_path):
    experiment_id = make_experiment()
    adapters = []
    for eval_loss in (0.5, 0.2, 0.9):
        run_id = make_run(experiment_id, status="running", metrics={"eval_loss": [eval_loss]})
        folder = tmp_path / f"adapter-{run_id}"
        folder.mkdir()
        spec = {"path": str(folder), "base_model": "tiny", "size_bytes": 1, "checksum": "sha256:x"}
        adapters.append(store.complete_run(run_id, spec))

    best = best_adapters(adapters, {experiment_id: store.get_experiment(experiment_id)})

    assert best == {adapters[1].id}
    assert adapter_mark(True, True) == "★ best · ⚠ diverged" and adapter_mark(False, False) == ""


def test_progress_counts_steps_of_max_steps_and_estimates_the_time_left(store, make_experiment, make_run):
    run = store.get_run(make_run(make_experiment(), status="running", config={"max_steps": 200}, metrics={"loss": [1.0] * 50}))

    progress = run_progress(run, now=run.started_at + timedelta(seconds=30))

    assert (progress.step, progress.total, progress.fraction) == (50, 200, 0.25)
    assert progress.eta == pytest.approx(90)
    assert progress.label() == "step 50 of 200 · 30s elapsed · about 1m 30s left"


def test_an_ended_runs_progress_says_how_long_it_took(store, make_experiment, make_run):
    run_id = make_run(make_experiment(), status="running", config={"max_steps": 200}, metrics={"loss": [1.0] * 50})
    store.fail_run(run_id, "out of memory")
    run = store.get_run(run_id)

    progress = run_progress(run, now=run.ended_at + timedelta(hours=1))  # an hour later: the time stays the run's own

    assert re.fullmatch(r"step 50 of 200 · took \d+s", progress.label())  # failed seconds after it started
    assert progress.eta is None


def test_progress_of_a_run_set_by_epochs_counts_to_the_steps_its_trainer_reported(store, make_experiment, make_run):
    config = {"epochs": 40, "total_steps": 6000, "steps_per_epoch": 150}  # what the builtin trainer logs at its start
    run = store.get_run(make_run(make_experiment(), status="running", config=config, metrics={"loss": [1.0] * 1500}))

    progress = run_progress(run, now=run.started_at + timedelta(seconds=10))

    assert (progress.step, progress.total, progress.fraction) == (1500, 6000, 0.25)


def test_progress_without_a_known_end_shows_the_step_alone(store, make_experiment, make_run):
    run = store.get_run(make_run(make_experiment(), status="running", config={"epochs": 2}, metrics={"loss": [1.0] * 5}))

    progress = run_progress(run, now=datetime(2030, 1, 1))

    assert progress.total is None and progress.eta is None
    assert progress.label().startswith("step 5 ·")


def test_a_queued_runs_progress_says_how_long_it_has_waited_and_the_steps_it_plans(store, make_experiment, make_run):
    run = store.get_run(make_run(make_experiment(), status="queued", config={"max_steps": 60_000}))

    progress = run_progress(run, now=run.created_at + timedelta(seconds=70))

    assert progress.label() == "queued for 1m 10s, waiting for a worker · 60,000 steps planned"  # was "step 0 · 0s elapsed"
    assert progress.fraction == 0 and progress.eta is None


def test_a_run_cancelled_while_queued_says_it_never_started(store, make_experiment, make_run):
    """It read "step 0 · took 0s"."""
    run_id = make_run(make_experiment(), status="queued")
    store.cancel_run(run_id)

    progress = run_progress(store.get_run(run_id), now=store.now())

    assert progress.label() == "ended before it started: no worker took it"


def test_a_runs_page_refreshes_while_it_runs_and_for_a_few_seconds_after_it_ended(store, make_experiment, make_run):
    """A cancelled training logs until its worker's next look: the page shows those last points too."""
    running = store.get_run(make_run(make_experiment(), status="running"))
    store.cancel_run(running.id)
    cancelled = store.get_run(running.id)

    assert still_changing(running, running.started_at + timedelta(hours=1))
    assert still_changing(cancelled, cancelled.ended_at + timedelta(seconds=SETTLING_SECONDS - 1))
    assert not still_changing(cancelled, cancelled.ended_at + timedelta(seconds=SETTLING_SECONDS))


def test_latest_values_put_losses_and_scores_first(store, make_experiment, make_run):
    run = store.get_run(make_run(make_experiment(), metrics={"grad_norm": [3.0], "loss": [0.5, 0.25], "eval_loss": [0.4]}))

    assert latest_metrics(run) == [("eval_loss", "0.4", "step 1"), ("loss", "0.25", "step 2"), ("grad_norm", "3", "step 1")]


def test_a_group_without_a_param_or_a_metric_shows_a_dash_not_none():
    groups = pl.DataFrame(
        {
            "params.learning_rate": [0.0003, None],
            "params.trainer": ["builtin", None],
            "runs": [2, 1],
            "metrics.loss mean": [0.25, None],
            "metrics.loss std": [0.05, None],
        }
    )

    table = groups_frame(groups, ["params.learning_rate", "params.trainer"], ["metrics.loss"])

    assert table.rows() == [("0.0003", "builtin", 2, "0.25 ± 0.05"), ("–", "–", 1, "–")]


def test_a_groups_spread_is_written_as_its_mean_is():
    assert spread(95_765.0, 15_234.0) == "95,765 ± 15,000"  # it read "95,765 ± 1.5e+04"
    assert spread(0.0355, 0.01432) == "0.0355 ± 0.014"
    assert spread(0.25, None) == "0.25"
    assert spread(None, None) == "–"

def test_a_note_keeps_code_as_typed_and_html_outside_it_as_text():
    note = 'Compare `a < b`, <b>bold?</b>\n```python\nif loss < 0.5: print("<b>ok</b>")\n```\n[x](javascript:alert(1))'

    shown = safe_markdown(note)

    assert "`a < b`" in shown and 'if loss < 0.5: print("<b>ok</b>")' in shown  # code is text already
    assert "&lt;b>bold?&lt;/b>" in shown and "[x](#" in shown


def test_user_text_in_markdown_keeps_streamlit_directives_and_shortcodes_as_text():
    shown = escape_markdown(":red[red] :material/delete: :smile:")

    assert ":red[" not in shown and ":material/" not in shown and ":smile:" not in shown
    assert shown.replace("\u200b", "").replace("\\", "") == ":red[red] :material/delete: :smile:"  # reads the same


def test_user_text_keeps_colons_that_open_no_shortcode_as_typed():
    """A zero-width space after every colon went along with every error a user copied into a search."""
    assert escape_markdown("RuntimeError: CUDA out of memory; see /logs:/tmp") == "RuntimeError: CUDA out of memory; see /logs:/tmp"
    assert "\u200b" in escape_markdown(":-1: and :+1:") and ":-1:" not in escape_markdown(":-1:").replace("\\", "")


def test_a_search_message_keeps_its_code_spans_and_a_typed_backtick_makes_no_link():
    assert escape_outside_code("unknown field `parms.lr` at column 1") == "unknown field `parms.lr` at column 1"

    shown = escape_outside_code("unknown status `x`[click](http://evil.example)`` at column 3")

    assert "[click](http" not in shown and "\\[click\\]" in shown


def test_workers_training_counts_each_process_running_a_run_once_and_not_a_silent_one(store, clock, make_experiment, make_run):
    experiment_id = make_experiment()
    store.mark_running(make_run(experiment_id, status="queued"), worker="gpu-lost:3")
    clock.advance(120)  # silent since: its worker is lost, though no reaper has failed its run yet
    for worker in ("gpu-a:1", "gpu-a:1", "gpu-b:7"):
        store.mark_running(make_run(experiment_id, status="queued"), worker=worker)
    make_run(experiment_id, status="queued")  # no worker yet

    assert workers_training(store.list_active_runs(), clock.now, heartbeat_timeout=60) == 2
    assert workers_training(store.list_active_runs(), clock.now, heartbeat_timeout=300) == 3


@pytest.mark.parametrize(
    ("running_here", "team_mode", "training", "said"),
    [
        (True, False, 0, "A worker runs for this machine's data folder."),
        (False, False, 0, "No worker runs for this machine's data folder: `tunedeck worker` starts one."),
        (False, True, 1, "No worker runs on this machine; 1 worker on other machines is training."),
        (False, True, 3, "No worker runs on this machine; 3 workers on other machines are training."),
        (False, True, 0, "No worker runs on this machine, and none is training anywhere: `tunedeck worker` on a GPU machine starts one."),
    ],
)
def test_the_jobs_page_asks_for_a_worker_only_where_none_trains(running_here, team_mode, training, said):
    """A team's app machine runs no worker of its own while GPU machines train: nothing to start there."""
    assert worker_caption(running_here, team_mode, training) == said


def test_a_dataset_inside_the_apps_folder_is_listed_by_its_path_from_there(tmp_path):
    """The form stores a full path; the list's column cut it to '/work/main/data/sample/sentimen'."""
    assert dataset_shown(str(tmp_path / "data" / "sample.csv"), here=tmp_path) == "data/sample.csv"
    assert dataset_shown("/elsewhere/sample.csv", here=tmp_path) == "/elsewhere/sample.csv"
    assert dataset_shown("data/sample.csv", here=tmp_path) == "data/sample.csv"
    assert dataset_shown("(imported from MLflow)", here=tmp_path) == "(imported from MLflow)"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.33251, "0.3325"), (6.6667e-05, "6.667e-05"), (4887.4, "4887"), (56_420.3, "56,420"), (-91_512.0, "-91,512"), (3e20, "3e+20"), (None, "–")],
)
def test_a_value_keeps_four_digits_and_from_ten_thousand_is_whole_and_grouped(value, shown):
    """samples_per_second read 5.642e+04 beside a plain 4887."""
    assert format_value(value) == shown


def test_a_compare_link_naming_two_runs_many_times_compares_the_two():
    """A link of 61 IDs, two of them distinct, was refused as more than 50 runs."""
    assert parse_run_ids(",".join(["12", "13"] * 30 + ["12"])) == ([12, 13], [])
