"""Run logs live in the store, so the app shows a run's output whichever machine trained it."""

import pytest

from core.errors import NotFoundError, ValidationError


@pytest.fixture
def run_id(store, make_experiment):
    return store.create_run(make_experiment(), {})


def test_a_run_without_output_has_an_empty_log(store, run_id):
    assert store.read_log(run_id) == ""


def test_appended_output_reads_back_whole_and_lines_split_across_appends_join(store, run_id):
    for text in ["step 1\nstep 2\nst", "ep 3\n", "done\n"]:
        store.append_log(run_id, text)
    assert store.read_log(run_id, tail_lines=None) == "step 1\nstep 2\nstep 3\ndone"
    assert store.read_log(run_id, tail_lines=2) == "step 3\ndone"
    assert store.read_log(run_id, tail_lines=3) == "step 2\nstep 3\ndone"


def test_the_tail_of_a_long_log_reads_only_its_last_lines(store, run_id):
    for chunk in range(50):
        store.append_log(run_id, "".join(f"line {chunk * 10 + i}\n" for i in range(10)))
    assert store.read_log(run_id, tail_lines=3) == "line 497\nline 498\nline 499"
    assert len(store.read_log(run_id, tail_lines=None).splitlines()) == 500


def test_logs_of_two_runs_stay_apart(store, make_experiment):
    experiment_id = make_experiment()
    first, second = store.create_run(experiment_id, {}), store.create_run(experiment_id, {})
    store.append_log(first, "first\n")
    store.append_log(second, "second\n")
    assert (store.read_log(first), store.read_log(second)) == ("first", "second")


def test_a_flood_of_output_keeps_its_end_and_says_what_was_left_out(store, run_id):
    store.append_log(run_id, "x" * 1_500_000 + "\nthe end\n")
    log = store.read_log(run_id, tail_lines=None)
    assert log.endswith("the end")
    assert "characters of output left out" in log.splitlines()[0]


def test_logging_for_an_unknown_run_or_bad_input_is_a_clear_error(store, unchanged):
    with pytest.raises(NotFoundError, match="no run with ID 999"):
        store.append_log(999, "hello\n")
    with pytest.raises(ValidationError, match="log text must be text"):
        store.append_log(1, 42)
    with pytest.raises(ValidationError, match="tail_lines"):
        store.read_log(1, tail_lines=0)
    unchanged()
