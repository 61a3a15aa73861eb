"""peft runs through a real worker, as a new user starts them: defaults, classification, resume."""

from pathlib import Path

import pytest

from core.artifacts import checkpoints_of
from core.models import SHIPPED_MODELS
from core.runs import resume_config
from core.settings import get_settings
from jobs import tasks
from tests.jobs.conftest import SAMPLE, start_worker, stop_worker, wait_until_terminal
from tests.optional import require

require("torch", "transformers", "peft", "tokenizers", "accelerate")

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # transformers'


@pytest.fixture
def peft_worker():
    worker = start_worker("--workers", "2", TUNEDECK_SYSTEM_METRICS_INTERVAL="0.5")
    yield worker
    stop_worker(worker)


def experiment(store, name: str) -> int:
    return store.create_experiment({"name": f"{name} {Path(get_settings().data_dir).name}", "dataset": SAMPLE})


def output_of(adapter_dir: str | None, text: str = "the soup was bland") -> torch.Tensor:
    model = AutoModelForCausalLM.from_pretrained(SHIPPED_MODELS / "tiny-gpt2")
    if adapter_dir:
        model = PeftModel.from_pretrained(model, adapter_dir)
    tokenizer = AutoTokenizer.from_pretrained(SHIPPED_MODELS / "tiny-gpt2")
    with torch.no_grad():
        return model(**tokenizer(text, return_tensors="pt")).logits


def test_a_peft_run_with_all_defaults_trains_the_shipped_model_and_a_classification_run_reports_accuracy(peft_worker, job_store):
    lm = tasks.start_run(job_store, experiment(job_store, "peft defaults"), {"trainer": "peft", "epochs": 1})
    classifier = tasks.start_run(
        job_store, experiment(job_store, "peft classes"), {"trainer": "peft", "task": "classification", "max_steps": 20}
    )

    run, classified = wait_until_terminal(job_store, [lm, classifier], timeout=600)

    assert run.status == "completed", run.error
    assert run.config["base_model"] == "tiny-gpt2" and run.config["target_modules"] == ["all-linear"]
    assert run.metrics["loss"].count == 150  # 2,400 training rows in batches of 16
    eval_steps = job_store.get_run_metrics(run.id).of("eval_loss")["step"].to_list()
    assert eval_steps[0] == 0 and eval_steps[-1] == 150 and run.metrics["eval_loss"].last < run.metrics["eval_loss"].max
    assert run.config["trainable_params"] > 0 and run.config["total_steps"] == 150 and run.config["effective_epochs"] == 1.0
    assert {"system/cpu_percent", "system/rss_mb", "system/memory_percent"} <= set(run.metrics)
    adapter = job_store.get_adapter(run.adapter.id)
    assert adapter.base_model == "tiny-gpt2"
    assert not torch.allclose(output_of(adapter.path), output_of(None))
    assert (checkpoints_of(get_settings().checkpoints_dir, run.id) / "checkpoint-150").is_dir()

    assert classified.status == "completed", classified.error
    accuracy = job_store.get_run_metrics(classified.id).of("eval_accuracy")["step"].to_list()
    assert accuracy[0] == 0 and accuracy[-1] == 20


def test_a_resumed_run_continues_the_step_count_from_the_last_checkpoint(peft_worker, job_store):
    experiment_id = experiment(job_store, "peft resume")
    config = {"trainer": "peft", "max_steps": 4, "save_interval": 2, "batch_size": 8}
    first = tasks.start_run(job_store, experiment_id, config)
    (done,) = wait_until_terminal(job_store, [first], timeout=300)
    assert done.status == "completed", done.error

    second = tasks.start_run(job_store, experiment_id, {**resume_config(done), "max_steps": 6})
    (resumed,) = wait_until_terminal(job_store, [second], timeout=300)

    assert resumed.status == "completed", resumed.error
    assert resumed.config["resume_from_run"] == first
    assert job_store.get_run_metrics(second).of("loss")["step"].to_list() == [5, 6]
