"""The peft trainer on the shipped tiny-gpt2 (data/models): a causal LM or a classifier, in seconds."""

import json
from pathlib import Path

import polars as pl
import pytest

from core.errors import DatasetError, ValidationError
from core.models import SHIPPED_MODELS
from core.training_config import TrainingConfig
from jobs.trainers import peft_data, peft_trainer
from jobs.trainers.base import TrainingStopped
from tests.jobs.recorder import Recorder
from tests.optional import require

require("torch", "transformers", "peft", "tokenizers", "accelerate")

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "sentiment.csv"
TEXTS = pl.read_csv(SAMPLE).head(64)
MODEL = SHIPPED_MODELS / "tiny-gpt2"
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # transformers'


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small only loses time to thread hand-offs
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def text_csv(tmp_path) -> Path:
    path = tmp_path / "texts.csv"
    TEXTS.write_csv(path)
    return path


@pytest.fixture
def pairs_jsonl(tmp_path) -> Path:
    path = tmp_path / "pairs.jsonl"
    texts = TEXTS["text"].to_list()
    pl.DataFrame({"prompt": [f"review: {t} ->" for t in texts], "completion": [t.split()[-1] for t in texts]}).write_ndjson(path)
    return path


def run(tmp_path: Path, dataset: Path, should_stop=lambda: False, models_dir=None, params=None, **overrides):
    settings = {"trainer": "peft", "max_steps": 6, "batch_size": 8, "eval_interval": 3, **overrides}
    log = Recorder()
    result = peft_trainer.train(
        TrainingConfig(**settings),
        dataset,
        tmp_path / "adapter",
        log,
        should_stop,
        models_dir,
        log_params=(params if params is not None else []).append,
        checkpoint_dir=overrides.get("save_interval") and tmp_path / "checkpoints",
    )
    return result, log


def logits(model, text: str = "the soup was bland") -> torch.Tensor:
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    with torch.no_grad():
        return model(**tokenizer(text, return_tensors="pt")).logits


def test_is_available_with_the_training_requirements_installed():
    assert peft_trainer.is_available() is None


def test_logs_every_step_and_evaluates_the_base_at_step_zero_then_every_interval(tmp_path, text_csv):
    result, log = run(tmp_path, text_csv)

    assert log.steps_with("loss") == [1, 2, 3, 4, 5, 6]
    assert log.steps_with("learning_rate") == [1, 2, 3, 4, 5, 6]
    assert log.steps_with("grad_norm") == [1, 2, 3, 4, 5, 6]
    assert log.steps_with("eval_loss") == [0, 3, 6]
    assert [step for step, _ in log.calls] == sorted(step for step, _ in log.calls)
    assert result.steps == 6 and result.metrics["eval_loss"] < log.values("eval_loss")[0]


def test_last_step_is_evaluated_off_the_interval(tmp_path, text_csv):
    _, log = run(tmp_path, text_csv, max_steps=4)

    assert log.steps_with("eval_loss") == [0, 3, 4]


def test_the_adapter_loads_back_with_peft_and_changes_the_outputs(tmp_path, text_csv):
    result, _ = run(tmp_path, text_csv)

    assert {"adapter_model.safetensors", "adapter_config.json"} <= {p.name for p in result.adapter_dir.iterdir()}
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(MODEL), result.adapter_dir)
    assert not torch.allclose(logits(tuned), logits(AutoModelForCausalLM.from_pretrained(MODEL)))
    targets = {name.split(".lora_B")[0].rsplit(".", 1)[-1] for name, _ in tuned.named_parameters() if "lora_B" in name}
    assert targets == {"c_attn", "c_proj", "c_fc"}  # all-linear: every layer but the tied output head


def test_lora_config_parameter_counts_and_the_effective_length_are_logged_as_params(tmp_path, text_csv):
    params = []

    run(tmp_path, text_csv, params=params, max_steps=None, epochs=2, target_modules=["c_attn"], lora_rank=4)

    (logged,) = params
    assert (logged["lora_r"], logged["lora_alpha"], logged["peft_task_type"]) == (4, 16.0, "CAUSAL_LM")
    assert logged["lora_target_modules"] == ["c_attn"]
    assert logged["trainable_params"] == 2 * 4 * (32 + 96)  # A: r x 32, B: 96 x r, in each of two layers
    base = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(MODEL).parameters())
    assert logged["total_params"] == logged["trainable_params"] + base
    assert (logged["steps_per_epoch"], logged["total_steps"], logged["effective_epochs"]) == (7, 14, 2.0)  # 51 rows / 8
    assert logged["num_train_epochs"] == 2 and "max_steps" not in logged


def test_max_steps_decides_the_length_and_replaces_epochs_in_the_params(tmp_path, text_csv):
    params = []

    run(tmp_path, text_csv, params=params, epochs=3, max_steps=2)

    assert params[0]["max_steps"] == 2 and "num_train_epochs" not in params[0]
    assert (params[0]["total_steps"], params[0]["effective_epochs"]) == (2, round(2 / 7, 4))


def test_classification_reports_eval_accuracy_from_step_zero_and_saves_its_head(tmp_path, text_csv):
    result, log = run(tmp_path, text_csv, task="classification")

    assert log.steps_with("eval_accuracy") == [0, 3, 6]
    assert 0.0 <= result.metrics["eval_accuracy"] <= 1.0
    saved = json.loads((result.adapter_dir / peft_trainer.TASK_FILE).read_text())
    assert saved == {"task": "classification", "labels": ["negative", "neutral", "positive"]}
    base = AutoModelForSequenceClassification.from_pretrained(MODEL, num_labels=3)
    tuned = PeftModel.from_pretrained(base, result.adapter_dir)
    assert any("score" in name for name, _ in tuned.named_parameters())


def test_classification_needs_a_label_column(tmp_path, pairs_jsonl):
    with pytest.raises(DatasetError, match="'label'"):
        run(tmp_path, pairs_jsonl, task="classification")


def test_prompt_completion_dataset_trains_on_the_completions(tmp_path, pairs_jsonl):
    result, log = run(tmp_path, pairs_jsonl)

    assert log.steps_with("loss") == [1, 2, 3, 4, 5, 6]
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()


def test_prompt_tokens_are_masked_out_of_the_labels():
    tokenizer = AutoTokenizer.from_pretrained(MODEL)

    (row,) = peft_data.encode(tokenizer, [("the soup was", "awful")], max_length=64)

    prompt, completion = [-100] * 3, tokenizer("awful")["input_ids"] + [tokenizer.eos_token_id]
    assert row["labels"] == prompt + completion
    assert row["input_ids"] == tokenizer("the soup was")["input_ids"] + completion


def test_should_stop_ends_training_with_training_stopped_and_no_adapter(tmp_path, text_csv):
    calls = iter(range(100))

    with pytest.raises(TrainingStopped) as stopped:
        run(tmp_path, text_csv, should_stop=lambda: next(calls) >= 2)

    assert stopped.value.step == 3  # checked before training, then after steps 1 and 2
    assert not (tmp_path / "adapter").exists()


def test_checkpoints_every_save_interval_and_a_resume_continues_the_step_count(tmp_path, text_csv):
    _, first = run(tmp_path, text_csv, max_steps=4, save_interval=2)
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert checkpoints == ["checkpoint-2", "checkpoint-4"]

    log = Recorder()
    config = TrainingConfig(trainer="peft", max_steps=6, batch_size=8, eval_interval=3, save_interval=2)
    peft_trainer.train(config, text_csv, tmp_path / "resumed", log, resume_from=tmp_path / "checkpoints" / "checkpoint-4")

    assert first.steps_with("loss") == [1, 2, 3, 4]
    assert log.steps_with("loss") == [5, 6]
    assert log.steps_with("eval_loss") == [6]  # no step-0 baseline: the run goes on from step 4


def test_dataset_without_text_or_prompt_completion_columns_names_them(tmp_path):
    path = tmp_path / "reviews.csv"
    pl.DataFrame({"review": ["good", "bad"], "label": [1, 0]}).write_csv(path)

    with pytest.raises(DatasetError, match=r"reviews\.csv needs a 'text' column, or 'prompt' and 'completion'.*'review'"):
        run(tmp_path, path)


@pytest.mark.parametrize(
    "base_model, message",
    [
        ("../escape", "must be a folder inside"),
        ("missing", "no model named “missing”.*tiny-gpt2"),
        ("/nonexistent/model", "is not a Hugging Face model .*no config.json.*tiny-gpt2"),
        ("tiny-base", "builtin trainer's numpy classifier.*use one of: tiny-gpt2"),
    ],
)
def test_a_bad_base_model_names_the_field_and_the_models_found(tmp_path, text_csv, base_model, message):
    with pytest.raises(ValidationError, match=f"^base_model: .*{message}"):
        run(tmp_path, text_csv, base_model=base_model)


def test_a_name_is_looked_up_in_the_given_models_folder_before_the_shipped_one(tmp_path, text_csv):
    mine = tmp_path / "models"
    (mine / "my-lm").mkdir(parents=True)
    for file in MODEL.iterdir():
        (mine / "my-lm" / file.name).write_bytes(file.read_bytes())

    result, _ = run(tmp_path, text_csv, models_dir=mine, base_model="my-lm", max_steps=1)

    assert result.steps == 1


def test_absolute_base_model_path_is_used_as_is(tmp_path, text_csv):
    result, _ = run(tmp_path, text_csv, base_model=str(MODEL), max_steps=1)

    assert result.steps == 1


def test_a_target_module_the_model_lacks_names_the_field_and_the_modules_it_has(tmp_path, text_csv):
    with pytest.raises(ValidationError, match=r"^target_modules: fc1, fc2 .*'all-linear', 'auto', or .*c_attn, c_fc, c_proj"):
        run(tmp_path, text_csv, target_modules=["fc1", "fc2"])


def test_auto_targets_the_modules_peft_knows_for_the_architecture(tmp_path, text_csv):
    params = []

    run(tmp_path, text_csv, params=params, target_modules=["auto"], max_steps=1)

    assert {name.rsplit(".", 1)[-1] for name in params[0]["lora_target_modules"]} == {"c_attn"}  # PEFT's choice for GPT-2


@pytest.mark.parametrize(
    "schedule, scheduler", [("linear", "linear"), ("cosine", "cosine"), ("constant", "constant_with_warmup")]
)
def test_schedules_map_to_trainer_schedulers_that_honour_warmup(tmp_path, schedule, scheduler):
    config = TrainingConfig(trainer="peft", max_steps=5, lr_schedule=schedule, warmup_steps=2)

    args = peft_trainer.training_arguments(config, tmp_path)

    assert args.lr_scheduler_type.value == scheduler and args.warmup_steps == 2


def test_the_same_eval_examples_are_continued_at_every_evaluation_with_the_decoding_settings(tmp_path, pairs_jsonl):
    samples = []
    peft_trainer.train(
        TrainingConfig(trainer="peft", max_steps=3, batch_size=8, eval_interval=3, eval_samples=4),
        pairs_jsonl,
        tmp_path / "adapter",
        Recorder(),
        log_samples=lambda step, rows: samples.append((step, rows)),
    )

    assert [step for step, _ in samples] == [0, 3]
    first, last = (rows for _, rows in samples)
    assert [row["example_id"] for row in first] == [row["example_id"] for row in last] and len(last) == 4
    row = last[0]
    assert row["input"].startswith("review: ") and row["reference"] == row["input"].split()[-2]
    assert row["extra"]["decoding"] == {"do_sample": False, "num_beams": 1, "max_new_tokens": 20}
    assert 0 <= row["score"] <= 1 and isinstance(row["prediction"], str)


def test_a_classifier_logs_its_label_and_confidence_per_example(tmp_path, text_csv):
    samples = []
    peft_trainer.train(
        TrainingConfig(trainer="peft", task="classification", max_steps=3, batch_size=8, eval_interval=3, eval_samples=5),
        text_csv,
        tmp_path / "adapter",
        Recorder(),
        log_samples=lambda step, rows: samples.append((step, rows)),
    )

    rows = samples[-1][1]
    assert len(rows) == 5 and {row["prediction"] for row in rows} <= {"negative", "neutral", "positive"}
    assert all(0 < row["extra"]["confidence"] <= 1 and row["correct"] == (row["prediction"] == row["reference"]) for row in rows)
