"""Sweeps: a grid is every combination (counted, capped), a random search draws a count of runs from a seed,
and every combination is validated before any run is stored."""

import math

import pytest

from core.errors import ConflictError, ValidationError
from core.runs import clone_config, start_runs
from core.sweeps import (
    MAX_SWEEP_RUNS,
    Range,
    grid,
    grid_size,
    parse_axes,
    preview,
    random_search,
    sweep_configs,
    sweep_runs,
)

BASE = {"trainer": "builtin", "epochs": 1, "learning_rate": 0.01}


def test_a_grid_is_every_combination_once():
    axes = parse_axes("learning_rate = 1e-3, 3e-3, 1e-2\nlora_rank = 4, 8", "builtin")

    configs = grid(BASE, axes)

    assert grid_size(axes) == 6
    assert sorted((c["learning_rate"], c["lora_rank"]) for c in configs) == sorted(
        (rate, rank) for rate in (1e-3, 3e-3, 1e-2) for rank in (4, 8)
    )
    assert all(c["epochs"] == 1 and c["trainer"] == "builtin" for c in configs)


def test_values_written_as_a_list_in_brackets_read_as_the_same_values():
    """As a Python list, YAML or a W&B sweep file writes them; before, '[1e-3' was refused as not a number."""
    assert parse_axes("learning_rate = [1e-3, 3e-3]\nlora_rank = [4, 8]", "builtin") == parse_axes(
        "learning_rate = 1e-3, 3e-3\nlora_rank = 4, 8", "builtin"
    )
    assert parse_axes("learning_rate = [1e-4 .. 1e-2 log]", "builtin") == {"learning_rate": Range(1e-4, 1e-2, log=True)}


def test_a_grid_over_the_cap_says_how_big_it_is_and_what_to_do():
    axes = parse_axes("seed = " + ", ".join(map(str, range(8))) + "\nlora_rank = 1, 2, 3, 4, 5, 6, 7", "builtin")

    with pytest.raises(ValidationError, match=rf"this grid makes 8 × 7 = 56 runs, and a sweep starts at most {MAX_SWEEP_RUNS}"):
        grid(BASE, axes)


def test_a_grid_over_one_setting_says_its_size_once():
    axes = parse_axes("seed = " + ", ".join(map(str, range(60))), "builtin")

    with pytest.raises(ValidationError, match=rf"this grid makes 60 runs, and a sweep starts at most {MAX_SWEEP_RUNS}"):
        grid(BASE, axes)  # not "60 = 60 runs"


def test_a_grid_at_the_cap_is_allowed():
    axes = parse_axes("seed = " + ", ".join(map(str, range(10))) + "\nlora_rank = 1, 2, 4, 8, 16", "builtin")

    assert len(grid(BASE, axes)) == 50


def test_a_grid_refuses_ranges():
    with pytest.raises(ValidationError, match="learning_rate is a range: list values, or use random search"):
        sweep_configs(BASE, "learning_rate = 1e-4 .. 1e-2", "grid")


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("epochs = 1e308", "epochs must be a whole number of ordinary size, not 1e+308"),
        ("epochs = 1.5", "epochs must be a whole number, not 1.5"),
    ],
)
def test_a_value_no_setting_can_take_is_refused_in_a_sentence(line, said):
    with pytest.raises(ValidationError) as raised:
        sweep_configs(BASE, line, "grid")

    assert str(raised.value) == f"line 1 ({line!r}): {said}"


def test_a_grid_given_two_ranges_names_both():
    with pytest.raises(ValidationError, match="learning_rate and lora_rank are ranges: list values, or use random search"):
        sweep_configs(BASE, "learning_rate = 1e-4 .. 1e-2 log\nlora_rank = 4 .. 32", "grid")


def test_a_random_search_draws_the_count_asked_for_within_the_ranges():
    axes = parse_axes("learning_rate = 1e-4 .. 1e-2 log\nlora_rank = 2 .. 32\nlr_schedule = linear, cosine", "builtin")

    configs = random_search(BASE, axes, count=20, seed=7)

    assert len(configs) == 20
    assert all(1e-4 <= c["learning_rate"] <= 1e-2 for c in configs)
    assert all(isinstance(c["lora_rank"], int) and 2 <= c["lora_rank"] <= 32 for c in configs)
    assert {c["lr_schedule"] for c in configs} <= {"linear", "cosine"}


def test_the_same_seed_draws_the_same_runs_and_another_seed_others():
    axes = parse_axes("learning_rate = 1e-4 .. 1e-2 log", "builtin")

    first, again, other = (random_search(BASE, axes, 5, seed) for seed in (1, 1, 2))

    assert first == again
    assert first != other


def test_a_log_range_spreads_draws_over_the_decades():
    draws = random_search(BASE, {"learning_rate": Range(1e-6, 1e-2, log=True)}, 50, seed=0)
    decades = {math.floor(math.log10(c["learning_rate"])) for c in draws}

    assert decades == {-6, -5, -4, -3}


@pytest.mark.parametrize("count", [0, MAX_SWEEP_RUNS + 1, True])
def test_a_random_search_count_is_bounded(count):
    with pytest.raises(ValidationError, match=f"a random search starts 1 to {MAX_SWEEP_RUNS} runs at once"):
        random_search(BASE, {"seed": [1, 2]}, count, seed=0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "learning_rat = 1e-3",
            r"line 1 \('learning_rat = 1e-3'\): 'learning_rat' is not a .* builtin trainer; did you mean learning_rate\?",
        ),
        ("task = classification", "'task' is not a setting of the builtin trainer; the builtin trainer's settings are"),
        ("learning_rate 1e-3", "line 1 .*write a setting, '=' and its values"),
        ("seed = 1\nseed = 2", "line 2 .*seed is swept twice"),
        ("learning_rate = 1e-3, 1e-3, 3e-3", r"line 1 .*: 0.001 is listed more than once; list each value once"),
        ("learning_rate = 1e-2 .. 1e-4", "a range goes from low to high, and 0.01 is not below 0.0001"),
        ("learning_rate = 0 .. 1 log", "a log range needs a low bound above 0"),
        ("learning_rate = fast .. slow", "'fast' is not a number"),
        ("# only a comment", "write at least one setting to sweep"),
        ("learning_rate = abc, 0.01", r"line 1 \('learning_rate = abc, 0.01'\): learning_rate must be a valid number, not 'abc'"),
        ("epochs = 2, 0", r"epochs must be at least 1, not 0"),
        ("lora_rank = 0 .. 8", r"lora_rank must be at least 1, not 0"),
    ],
)
def test_a_bad_sweep_line_names_the_line_and_the_fix(text, message):
    with pytest.raises(ValidationError, match=message):
        sweep_configs(BASE, text, "random")


def test_a_swept_value_the_setting_refuses_is_named_before_any_config_is_made():
    with pytest.raises(ValidationError, match=r"line 1 .*learning_rate must be at most .*, not 20"):
        sweep_configs(BASE, "learning_rate = 1e-3, 20\nlora_rank = 4, 8", "grid")


def test_one_bad_combination_is_named_by_its_values():
    """The form's own settings go with every combination: a bad one there fails the first, named by its values."""
    with pytest.raises(ValidationError, match=r"run 1 of 4 \(learning_rate=0.001, lora_rank=4\) is not a valid config, so no run"):
        sweep_runs(BASE | {"epochs": 0}, "learning_rate = 1e-3, 3e-3\nlora_rank = 4, 8", "grid")


def test_a_sweep_stores_all_its_runs_queued(store, make_experiment):
    experiment_id = make_experiment()
    configs = sweep_runs(BASE, "lora_rank = 4, 8, 16", "grid")
    queued = []

    run_ids = start_runs(store, experiment_id, configs, enqueue=lambda run_id: queued.append(run_id) or f"job-{run_id}")

    runs = store.get_runs(run_ids)
    assert queued == run_ids
    assert [run.config["lora_rank"] for run in runs] == [4, 8, 16]
    assert {run.status for run in runs} == {"queued"} and {run.job_id for run in runs} == {f"job-{i}" for i in run_ids}
    assert store.get_experiment(experiment_id).run_count == 3


def test_a_sweep_with_one_unstorable_config_stores_none(store, make_experiment, unchanged):
    experiment_id = store.find_experiment("baseline").id

    with pytest.raises(ValidationError, match="config 2 must not contain NaN"):
        store.create_runs(experiment_id, [{"seed": 1}, {"seed": float("nan")}])

    unchanged()


def test_a_sweep_into_a_deleted_experiment_stores_none(store, make_experiment, backing):
    experiment_id = make_experiment()
    store.delete_experiment(experiment_id)

    with pytest.raises(ConflictError, match="is deleted; restore it first"):
        store.create_runs(experiment_id, [{"seed": 1}, {"seed": 2}])

    assert store.list_runs(experiment_id) == []


def test_a_clone_copies_the_settings_but_not_the_resume_link(store, make_experiment, make_run):
    run_id = make_run(make_experiment(), config={"trainer": "peft", "epochs": 2, "resume_from_run": 1, "trainable_params": 10})

    assert clone_config(store.get_run(run_id)) == {"trainer": "peft", "epochs": 2}


def test_a_grid_of_one_setting_says_a_run_for_each_value_not_every_combination():
    assert preview("seed = 1, 2, 3", "builtin", "grid") == (3, "This grid starts 3 runs: one for each value of seed.")


def test_a_ranges_bound_out_of_range_is_said_as_typed():
    """epochs = 0 .. 3 said "not 0.0": a range's bounds are read as floats."""
    with pytest.raises(ValidationError, match=r"epochs must be at least 1, not 0$"):
        sweep_runs(BASE, "epochs = 0 .. 3", "random", count=2)
