"""Prediction samples from the trainers: a fixed, seeded set of eval examples answered at every evaluation."""

import json
import uuid

from core.status import RunStatus
from core.training_config import TrainingConfig
from jobs import tasks
from jobs.trainers.builtin import load_tuned, train
from tests.jobs.conftest import SAMPLE, wait_until_terminal
from tests.jobs.recorder import Recorder


class SampleRecorder:
    def __init__(self):
        self.calls: list[tuple[int, list[dict]]] = []

    def __call__(self, step: int, rows: list[dict]) -> None:
        self.calls.append((step, rows))


def test_the_builtin_trainer_answers_the_same_32_eval_examples_at_every_evaluation(tmp_path):
    samples = SampleRecorder()
    log = Recorder()
    train(TrainingConfig(max_steps=20, eval_interval=10), SAMPLE, tmp_path / "a", log, log_samples=samples)

    assert [step for step, _ in samples.calls] == log.steps_with("eval_loss") == [0, 10, 20]
    ids = [[row["example_id"] for row in rows] for _, rows in samples.calls]
    assert len(ids[0]) == 32 and ids[0] == ids[1] == ids[2]
    row = samples.calls[-1][1][0]
    assert row["prediction"] in {"positive", "negative", "neutral"} and 0 < row["extra"]["confidence"] <= 1
    assert row["correct"] == (row["prediction"] == row["reference"]) and row["score"] == float(row["correct"])


def test_another_training_seed_answers_the_same_examples_and_eval_samples_sets_how_many(tmp_path):
    first, second = SampleRecorder(), SampleRecorder()
    train(TrainingConfig(max_steps=5, seed=1, eval_samples=8), SAMPLE, tmp_path / "a", Recorder(), log_samples=first)
    train(TrainingConfig(max_steps=5, seed=2, eval_samples=8), SAMPLE, tmp_path / "b", Recorder(), log_samples=second)

    ids = [row["example_id"] for row in first.calls[0][1]]
    assert len(ids) == 8 and ids == [row["example_id"] for row in second.calls[0][1]]


def test_eval_samples_zero_logs_none(tmp_path):
    samples = SampleRecorder()
    train(TrainingConfig(max_steps=5, eval_samples=0), SAMPLE, tmp_path / "a", Recorder(), log_samples=samples)
    assert samples.calls == []


def test_the_saved_adapter_answers_as_the_last_logged_samples(tmp_path):
    samples = SampleRecorder()
    train(TrainingConfig(max_steps=30, eval_interval=30), SAMPLE, tmp_path / "a", Recorder(), log_samples=samples)

    last = samples.calls[-1][1]
    answers = load_tuned(tmp_path / "a").answer([row["input"] for row in last])
    assert [label for label, _ in answers] == [row["prediction"] for row in last]
    assert [round(confidence, 3) for _, confidence in answers] == [round(row["extra"]["confidence"], 3) for row in last]


def test_samples_logged_by_the_builtin_trainer_through_a_real_worker_read_back_per_step(worker, job_store):
    experiment_id = job_store.create_experiment({"name": f"samples {uuid.uuid4().hex[:8]}", "dataset": SAMPLE})
    run_id = tasks.start_run(job_store, experiment_id, {"max_steps": 20, "eval_interval": 10, "eval_samples": 16})

    (run,) = wait_until_terminal(job_store, [run_id])

    assert run.status is RunStatus.COMPLETED
    assert job_store.list_sample_steps(run_id) == [0, 10, 20]
    for step in (0, 10, 20):
        at_step = job_store.get_samples([run_id], step=step)
        assert at_step.height == 16 and set(at_step["step"]) == {step}
        assert json.loads(at_step["extra"][0])["confidence"] > 0
    accuracy = job_store.get_samples([run_id], step=20)["correct"].mean()
    assert accuracy is not None and 0 <= accuracy <= 1
