"""The peft trainer on a tiny GPT-2 built here: a word-level tokenizer and random weights, in a second."""

from pathlib import Path

import polars as pl
import pytest

from core.errors import DatasetError, ValidationError
from core.training_config import TrainingConfig
from jobs.trainers import peft_trainer
from jobs.trainers.base import TrainingStopped
from tests.jobs.recorder import Recorder
from tests.optional import require

require("torch", "transformers", "peft", "tokenizers", "accelerate")

import torch
from peft import PeftModel
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "sentiment.csv"
TEXTS = pl.read_csv(SAMPLE)["text"].head(64).to_list()
MODEL = "tiny-gpt2"
pytestmark = [
    pytest.mark.filterwarnings("ignore:fan_in_fan_out is set to False:UserWarning"),  # GPT-2's Conv1D; PEFT fixes it
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),  # transformers, not us
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small only loses time to thread hand-offs
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """A folder holding MODEL: a causal LM and tokenizer saved as any Hugging Face model is."""
    root = tmp_path_factory.mktemp("models")
    tokenizer = tiny_tokenizer(TEXTS)
    tokenizer.save_pretrained(root / MODEL)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=len(tokenizer))
    config.eos_token_id = config.bos_token_id = tokenizer.eos_token_id
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(root / MODEL)
    return root


def tiny_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    words = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    words.train_from_iterator(texts, trainers.WordLevelTrainer(vocab_size=400, special_tokens=["[PAD]", "[UNK]", "[EOS]"]))
    return PreTrainedTokenizerFast(
        tokenizer_object=words, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]", model_max_length=64
    )


@pytest.fixture
def text_csv(tmp_path) -> Path:
    path = tmp_path / "texts.csv"
    pl.DataFrame({"text": TEXTS}).write_csv(path)
    return path


@pytest.fixture
def pairs_jsonl(tmp_path) -> Path:
    path = tmp_path / "pairs.jsonl"
    pl.DataFrame({"prompt": [f"review: {t} ->" for t in TEXTS], "completion": [t.split()[-1] for t in TEXTS]}).write_ndjson(path)
    return path


def run(tmp_path: Path, models_dir: Path, dataset: Path, should_stop=lambda: False, **overrides):
    settings = {"trainer": "peft", "base_model": MODEL, "max_steps": 6, "batch_size": 8, "eval_interval": 3}
    settings |= {"target_modules": ["c_attn"], "learning_rate": 1e-2, **overrides}
    log = Recorder()
    result = peft_trainer.train(TrainingConfig(**settings), dataset, tmp_path / "adapter", log, should_stop, models_dir)
    return result, log


def test_is_available_with_the_training_requirements_installed():
    assert peft_trainer.is_available() is None


def test_every_step_logs_loss_and_learning_rate_and_evaluates_every_interval(tmp_path, models_dir, text_csv):
    result, log = run(tmp_path, models_dir, text_csv)

    assert log.steps_with("loss") == [1, 2, 3, 4, 5, 6]
    assert log.steps_with("learning_rate") == [1, 2, 3, 4, 5, 6]
    assert log.steps_with("grad_norm") == [1, 2, 3, 4, 5, 6]
    assert log.steps_with("eval_loss") == [3, 6]
    assert [step for step, _ in log.calls] == sorted(step for step, _ in log.calls)
    assert result.steps == 6 and result.metrics["eval_loss"] > 0


def test_last_step_is_evaluated_off_the_interval(tmp_path, models_dir, text_csv):
    _, log = run(tmp_path, models_dir, text_csv, max_steps=4)

    assert log.steps_with("eval_loss") == [3, 4]


def test_adapter_loads_back_with_peft_and_has_learned_lora_weights(tmp_path, models_dir, text_csv):
    result, _ = run(tmp_path, models_dir, text_csv)

    assert {"adapter_model.safetensors", "adapter_config.json"} <= {p.name for p in result.adapter_dir.iterdir()}
    tuned = PeftModel.from_pretrained(GPT2LMHeadModel.from_pretrained(models_dir / MODEL), result.adapter_dir)
    lora_b = [p for name, p in tuned.named_parameters() if "lora_B" in name]
    assert len(lora_b) == 2  # c_attn in each of the two layers
    assert all(p.abs().sum() > 0 for p in lora_b)  # B starts at zero


def test_prompt_completion_dataset_trains_on_the_completions(tmp_path, models_dir, pairs_jsonl):
    result, log = run(tmp_path, models_dir, pairs_jsonl)

    assert log.steps_with("loss") == [1, 2, 3, 4, 5, 6]
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()


def test_prompt_tokens_are_masked_out_of_the_labels(models_dir):
    tokenizer = PreTrainedTokenizerFast.from_pretrained(models_dir / MODEL)

    (row,) = peft_trainer.encode(tokenizer, [("the soup was", "awful")], max_length=64)

    prompt, completion = [-100] * 3, tokenizer("awful")["input_ids"] + [tokenizer.eos_token_id]
    assert row["labels"] == prompt + completion
    assert row["input_ids"] == tokenizer("the soup was")["input_ids"] + completion


def test_should_stop_ends_training_with_training_stopped_and_no_adapter(tmp_path, models_dir, text_csv):
    calls = iter(range(100))

    with pytest.raises(TrainingStopped) as stopped:
        run(tmp_path, models_dir, text_csv, should_stop=lambda: next(calls) >= 2)

    assert stopped.value.step == 3  # checked before training, then after steps 1 and 2
    assert not (tmp_path / "adapter").exists()


def test_dataset_without_text_or_prompt_completion_columns_names_them(tmp_path, models_dir):
    path = tmp_path / "reviews.csv"
    pl.DataFrame({"review": ["good", "bad"], "label": [1, 0]}).write_csv(path)

    with pytest.raises(DatasetError, match=r"reviews\.csv needs a 'text' column, or 'prompt' and 'completion'.*'review'"):
        run(tmp_path, models_dir, path)


@pytest.mark.parametrize(
    "base_model, message",
    [("../escape", "must be a folder inside"), ("missing", "no config.json"), ("/nonexistent/model", "no config.json")],
)
def test_base_model_must_be_a_model_folder_inside_models_dir_or_absolute(tmp_path, models_dir, text_csv, base_model, message):
    with pytest.raises(ValidationError, match=message):
        run(tmp_path, models_dir, text_csv, base_model=base_model)


def test_absolute_base_model_path_is_used_as_is(tmp_path, models_dir, text_csv):
    elsewhere = tmp_path / "other-models"

    result, _ = run(tmp_path, elsewhere, text_csv, base_model=str(models_dir / MODEL), max_steps=1)

    assert result.steps == 1


def test_unknown_target_module_is_a_clear_error(tmp_path, models_dir, text_csv):
    with pytest.raises(ValidationError, match="cannot add LoRA to tiny-gpt2"):
        run(tmp_path, models_dir, text_csv, target_modules=["q_proj"])


@pytest.mark.parametrize(
    "schedule, scheduler", [("linear", "linear"), ("cosine", "cosine"), ("constant", "constant_with_warmup")]
)
def test_schedules_map_to_trainer_schedulers_that_honour_warmup(tmp_path, schedule, scheduler):
    config = TrainingConfig(trainer="peft", max_steps=5, lr_schedule=schedule, warmup_steps=2)

    args = peft_trainer.training_arguments(config, tmp_path)

    assert args.lr_scheduler_type.value == scheduler and args.warmup_steps == 2


def test_a_peft_run_through_a_real_worker_registers_a_peft_adapter(models_dir, text_csv, job_store):
    from jobs import tasks
    from tests.jobs.conftest import start_worker, stop_worker, wait_until_terminal

    experiment_id = job_store.create_experiment({"name": f"peft e2e {text_csv.parent.name}", "dataset": str(text_csv)})
    config = {"trainer": "peft", "base_model": str(models_dir / MODEL), "max_steps": 4, "batch_size": 8, "eval_interval": 2}
    run_id = tasks.start_run(job_store, experiment_id, {**config, "target_modules": ["c_attn"], "learning_rate": 1e-2})
    worker = start_worker("--workers", "1")
    try:
        (run,) = wait_until_terminal(job_store, [run_id], timeout=180)
    finally:
        stop_worker(worker)

    assert run.status == "completed", run.error
    assert run.metrics["loss"].count == 4 and "eval_loss" in run.metrics
    adapter = job_store.get_adapter(run.adapter.id)
    assert adapter.base_model == str(models_dir / MODEL)
    assert {"adapter_model.safetensors", "adapter_config.json"} <= {p.name for p in Path(adapter.path).iterdir()}
