"""TuneDeckCallback inside a real transformers.Trainer, logging to a real store."""

import json
import logging
import math

import pytest

from tests.optional import require

require("torch", "transformers", "accelerate")

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    Trainer,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from core import tracking
from core.duckdb_store import DuckDBStore
from core.integrations import hf_samples
from core.integrations.huggingface import TuneDeckCallback
from core.models import SHIPPED_MODELS

VOCAB = 50
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # transformers'


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def store(tmp_path) -> DuckDBStore:
    return DuckDBStore(tmp_path / "t.duckdb")


@pytest.fixture
def run(store):
    with tracking.start_run("hf callback test", params={"model": "tiny-gpt2"}, store=store) as active:
        yield active


def train(tmp_path, callback: TuneDeckCallback, max_steps: int = 4) -> Trainer:
    """A few steps of a two-layer GPT-2 on random token ids: no tokenizer, no download."""
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=16, n_positions=16, vocab_size=VOCAB))
    rows = [{"input_ids": ids, "labels": ids} for ids in torch.randint(0, VOCAB, (32, 12))]
    args = TrainingArguments(
        output_dir=str(tmp_path / "trainer"),
        max_steps=max_steps,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        warmup_steps=1,
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows, eval_dataset=rows[:8], callbacks=[callback])
    trainer.train()
    return trainer


def test_trainer_metrics_reach_the_run_at_each_global_step(tmp_path, store, run):
    train(tmp_path, TuneDeckCallback(run=run))

    metrics = store.get_run_metrics(run.id)
    assert metrics.of("loss")["step"].to_list() == [1, 2, 3, 4]
    assert metrics.of("learning_rate")["step"].to_list() == [1, 2, 3, 4]
    assert metrics.of("eval_loss")["step"].to_list() == [2, 4]
    assert metrics.of("epoch")["value"].to_list()[-1] == 1.0


def test_training_arguments_are_logged_as_params_beside_the_scripts_own(tmp_path, store, run):
    train(tmp_path, TuneDeckCallback(run=run))

    config = store.get_run(run.id).config
    assert config["model"] == "tiny-gpt2"
    assert config["learning_rate"] == 1e-3 and config["max_steps"] == 4 and config["per_device_train_batch_size"] == 8
    assert config["lr_scheduler_type"] == "linear"


def test_the_length_that_decides_is_logged_with_the_steps_and_epochs_training_really_takes(tmp_path, store, run):
    train(tmp_path, TuneDeckCallback(run=run), max_steps=6)

    config = store.get_run(run.id).config
    assert "num_train_epochs" not in config  # max_steps overrides it, so it would mislead
    assert (config["total_steps"], config["steps_per_epoch"], config["effective_epochs"]) == (6, 4, 1.5)


def test_parameter_counts_and_a_peft_models_lora_config_are_logged_as_params(tmp_path, store, run):
    require("peft")
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=16, n_positions=16, vocab_size=VOCAB))
    total = sum(p.numel() for p in base.parameters())
    model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["c_attn"], fan_in_fan_out=True))
    callback = TuneDeckCallback(run=run)

    callback.on_train_begin(
        TrainingArguments(output_dir=str(tmp_path), report_to=[]), TrainerState(), TrainerControl(), model=model
    )

    config = store.get_run(run.id).config
    lora = 2 * 2 * (16 + 48)  # two layers, A: r x 16, B: 48 x r
    assert (config["trainable_params"], config["total_params"]) == (lora, total + lora)
    assert (config["lora_r"], config["lora_alpha"], config["lora_target_modules"], config["peft_type"]) == (
        2,
        4,
        ["c_attn"],
        "LORA",
    )


def test_training_end_flushes_the_metrics_but_leaves_the_run_running(tmp_path, store, run):
    run.writer.flush_seconds = 3600  # only the callback's flush can write them

    train(tmp_path, TuneDeckCallback(run=run))

    assert store.get_run_metrics(run.id).of("loss").height == 4
    assert store.get_run(run.id).status.value == "running"


def test_should_stop_ends_training_after_the_current_step(tmp_path):
    callback = TuneDeckCallback(log=lambda step, values: None, should_stop=lambda: True)

    trainer = train(tmp_path, callback)

    assert trainer.state.global_step == 1 and callback.stop_requested


def test_non_finite_values_and_non_numbers_are_skipped_with_a_warning(tmp_path, caplog):
    logged = []
    callback = TuneDeckCallback(log=lambda step, values: logged.append((step, values)))
    logs = {"loss": math.nan, "grad_norm": math.inf, "learning_rate": 1e-3, "note": "text", "flag": True}

    with caplog.at_level(logging.WARNING, logger="core.integrations.huggingface"):
        callback.on_log(
            TrainingArguments(output_dir=str(tmp_path), report_to=[]), TrainerState(global_step=7), TrainerControl(), logs
        )

    assert logged == [(7, {"learning_rate": 1e-3})]
    assert "'loss'" in caplog.text and "'grad_norm'" in caplog.text


def test_without_run_or_log_it_attaches_to_the_workers_run(tmp_path, store, run, monkeypatch):
    monkeypatch.setenv(tracking.RUN_ID_VARIABLE, str(run.id))
    monkeypatch.setattr(tracking, "open_store", lambda: store)
    callback = TuneDeckCallback()

    train(tmp_path, callback, max_steps=2)

    callback.run.finish()
    assert callback.run.id == run.id and callback.run.attached
    assert store.get_run_metrics(run.id).of("loss")["step"].to_list() == [1, 2]


def test_with_tracking_disabled_a_whole_training_runs_and_stores_nothing(tmp_path, store, monkeypatch):
    monkeypatch.setenv("TUNEDECK_MODE", "disabled")
    monkeypatch.setattr(tracking, "open_store", lambda: store)
    before = store.list_experiments(include_deleted=True).total

    train(tmp_path, TuneDeckCallback(), max_steps=2)  # every hook, the flush at the end included

    assert store.list_experiments(include_deleted=True).total == before


def test_given_eval_examples_and_the_tokenizer_it_logs_the_models_generations_after_each_evaluation(tmp_path, store, run):
    shipped = SHIPPED_MODELS / "tiny-gpt2"
    tokenizer = AutoTokenizer.from_pretrained(shipped)
    model = AutoModelForCausalLM.from_pretrained(shipped)
    examples = [
        {"example_id": "a", "input": "the soup was", "reference": "bland"},
        {"example_id": "b", "input": "we went", "reference": "home"},
    ]
    callback = TuneDeckCallback(run=run, eval_examples=examples, tokenizer=tokenizer, max_new_tokens=3)

    callback.on_evaluate(
        TrainingArguments(output_dir=str(tmp_path), report_to=[]), TrainerState(global_step=5), TrainerControl(), model=model
    )

    logged = store.get_samples([run.id], step=5)
    assert logged["example_id"].to_list() == ["a", "b"]
    assert logged["prediction"].to_list() == [hf_samples.generate(model, tokenizer, e["input"], 3) for e in examples]
    assert json.loads(logged["extra"][0]) == {"decoding": {"do_sample": False, "num_beams": 1, "max_new_tokens": 3}}
    assert all(0 <= score <= 1 for score in logged["score"])


def test_eval_examples_without_a_tokenizer_are_refused_at_once():
    with pytest.raises(ValueError, match="need the tokenizer"):
        TuneDeckCallback(log=lambda step, values: None, eval_examples=[{"example_id": 1, "input": "x", "reference": "y"}])
