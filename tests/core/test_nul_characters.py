"""NUL characters, which PostgreSQL's text cannot hold, on both backends alike: in what a machine wrote (a process's
output, a traceback, a model's answer) each is kept as U+FFFD, the replacement character; in what a person types
(a description, a note, a job ID) it is refused with a sentence, and the store is left as it was."""

import pytest

from core.errors import ValidationError
from core.status import RunStatus

SHOWN = "\ufffd"


@pytest.fixture
def run_id(store, make_experiment, make_run):
    return make_run(make_experiment(), status="running")


def test_output_holding_nul_characters_is_kept_and_so_is_every_line_after_it(store, run_id):
    store.append_log(run_id, "epoch 1 \x00\x00 50%\n")
    store.append_log(run_id, "epoch 2\n")

    assert store.read_log(run_id, tail_lines=None) == f"epoch 1 {SHOWN}{SHOWN} 50%\nepoch 2"


def test_a_run_failed_with_nul_characters_in_its_error_and_traceback_is_failed(store, run_id):
    store.fail_run(run_id, "crashed\x00", traceback="Traceback (most recent call last):\n\x00boom")

    run = store.get_run(run_id)
    assert run.status is RunStatus.FAILED
    assert (run.error, run.traceback) == (f"crashed{SHOWN}", f"Traceback (most recent call last):\n{SHOWN}boom")


def test_a_models_answer_holding_nul_characters_is_logged_as_a_sample(store, run_id):
    store.log_samples(run_id, 1, [{"example_id": 1, "input": "a\x00b", "prediction": "c\x00", "reference": "c"}])

    sample = store.get_samples([run_id]).row(0, named=True)
    assert (sample["input"], sample["prediction"]) == (f"a{SHOWN}b", f"c{SHOWN}")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda s, r: s.create_experiment({"name": "pasted", "dataset": "d.csv", "description": "a\x00b"}),
            "invalid experiment: description must not contain NUL characters (\\x00)",
        ),
        (lambda s, r: s.set_note("run", r, "looks good\x00"), "the note must not contain NUL characters (\\x00)"),
        (lambda s, r: s.set_job_id(r, "job\x00"), "job ID must be non-empty text without NUL characters"),
    ],
)
def test_typed_text_holding_nul_characters_is_refused_and_changes_nothing(store, run_id, unchanged, call, message):
    with pytest.raises(ValidationError) as raised:
        call(store, run_id)

    assert str(raised.value).startswith(message)
    unchanged()
