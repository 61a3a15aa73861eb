import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from core.errors import DatasetError, ValidationError
from core.training_config import TrainingConfig
from jobs.trainers import builtin
from jobs.trainers.base import TrainingStopped
from jobs.trainers.builtin import load_adapter, load_base, train
from tests.jobs.recorder import Recorder

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
STEP_KEYS = {"loss", "learning_rate", "grad_norm", "samples_per_second"}
EVAL_KEYS = {"eval_loss", "eval_accuracy"}


def run(tmp_path: Path, dataset: Path = SAMPLE / "sentiment.csv", **overrides) -> tuple[builtin.TrainResult, Recorder]:
    settings = {"max_steps": 30, "batch_size": 16, **overrides}
    log = Recorder()
    return train(TrainingConfig(**settings), dataset, tmp_path / "adapter", log), log


def write_csv(tmp_path: Path, **columns) -> Path:
    path = tmp_path / "data.csv"
    pl.DataFrame(columns).write_csv(path)
    return path


def test_sample_run_improves_eval_accuracy_over_frozen_base(tmp_path):
    result, _ = run(tmp_path, max_steps=None, epochs=3)

    assert result.metrics["base_eval_accuracy"] < 0.6
    assert result.metrics["eval_accuracy"] > 0.9
    assert result.metrics["eval_loss"] < result.metrics["base_eval_loss"]


def test_same_config_and_seed_give_same_metrics(tmp_path):
    first, first_log = run(tmp_path / "a", lora_dropout=0.1, seed=3)
    second, second_log = run(tmp_path / "b", lora_dropout=0.1, seed=3)

    assert first_log.without_throughput() == second_log.without_throughput()
    assert load_adapter(first.adapter_dir).tensors.keys() == load_adapter(second.adapter_dir).tensors.keys()
    for name, tensor in load_adapter(first.adapter_dir).tensors.items():
        np.testing.assert_array_equal(tensor, load_adapter(second.adapter_dir).tensors[name])


def test_another_seed_trains_a_different_adapter(tmp_path):
    _, first_log = run(tmp_path / "a", seed=1)
    _, second_log = run(tmp_path / "b", seed=2)
    assert first_log.values("loss") != second_log.values("loss")


def test_every_step_from_one_logs_finite_training_metrics(tmp_path):
    _, log = run(tmp_path, max_steps=12, eval_interval=5)

    training = [(step, m) for step, m in log.calls if "loss" in m]
    assert [step for step, _ in training] == list(range(1, 13))
    assert all(set(m) == STEP_KEYS for _, m in training)
    assert all(isinstance(v, float) and math.isfinite(v) for _, m in log.calls for v in m.values())


def test_evaluates_the_frozen_base_at_step_zero_then_every_eval_interval_and_after_the_last_step(tmp_path):
    result, log = run(tmp_path, max_steps=25, eval_interval=10)

    assert log.steps_with("eval_loss") == [0, 10, 20, 25]
    assert log.calls[0] == (0, {"eval_loss": result.metrics["base_eval_loss"], "eval_accuracy": result.metrics["base_eval_accuracy"]})
    assert all(set(m) == EVAL_KEYS for _, m in log.calls if "eval_loss" in m)


def test_max_steps_wins_over_epochs(tmp_path):
    result, log = run(tmp_path, epochs=3, max_steps=7)
    assert result.steps == 7
    assert log.steps_with("loss")[-1] == 7


def test_epochs_cover_the_training_split_once_each(tmp_path):
    rows = 50
    path = write_csv(tmp_path, text=[f"the soup was tasty {i}" for i in range(rows)], label=["positive"] * rows)

    result, _ = run(tmp_path, dataset=path, max_steps=None, epochs=2, batch_size=8)

    assert result.steps == 2 * math.ceil(40 / 8)  # 20% of rows are held out for eval


def after_warm_up(schedule: str, peak: float = 0.01, warmup: int = 4, total: int = 20) -> list[float]:
    """The rates of steps warmup+1..total: the peak first, then linear or half a cosine down over total-warmup steps,
    so the last step's rate is not yet 0 (linear: peak / 16 here)."""
    progress = [(step - warmup - 1) / (total - warmup) for step in range(warmup + 1, total + 1)]
    if schedule == "linear":
        return [peak * (1 - p) for p in progress]
    if schedule == "cosine":
        return [peak * 0.5 * (1 + math.cos(math.pi * p)) for p in progress]
    return [peak] * len(progress)


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
def test_learning_rate_warms_up_then_follows_the_schedule(tmp_path, schedule):
    _, log = run(tmp_path, max_steps=20, warmup_steps=4, learning_rate=0.01, lr_schedule=schedule)

    rates = log.values("learning_rate")
    assert rates[:4] == pytest.approx([0.0025, 0.005, 0.0075, 0.01])
    assert rates[4:] == pytest.approx(after_warm_up(schedule))
    assert all(lr > 0 for lr in rates)


def test_adapter_written_as_safetensors_with_peft_style_config(tmp_path):
    result, _ = run(tmp_path, lora_rank=4, lora_alpha=8, target_modules=["fc2", "fc1"])

    adapter = load_adapter(result.adapter_dir)

    buckets, hidden = load_base("tiny-base").weights["fc1.weight"].T.shape
    assert {name: t.shape for name, t in adapter.tensors.items()} == {
        "base_model.model.fc1.lora_A.weight": (4, buckets),
        "base_model.model.fc1.lora_B.weight": (hidden, 4),
        "base_model.model.fc2.lora_A.weight": (4, hidden),
        "base_model.model.fc2.lora_B.weight": (3, 4),
    }
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    on_disk = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert on_disk == adapter.config
    assert on_disk["peft_type"] == "LORA"
    assert (on_disk["r"], on_disk["lora_alpha"], on_disk["target_modules"]) == (4, 8, ["fc1", "fc2"])
    assert on_disk["base_model_name_or_path"] == "tiny-base"
    assert on_disk["labels"] == ["negative", "neutral", "positive"]


def test_only_the_targeted_modules_get_adapters(tmp_path):
    result, _ = run(tmp_path, target_modules=["fc2"])
    assert sorted(load_adapter(result.adapter_dir).tensors) == [
        "base_model.model.fc2.lora_A.weight",
        "base_model.model.fc2.lora_B.weight",
    ]


def test_loading_an_adapter_from_an_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValidationError, match=r"adapter_model\.safetensors"):
        load_adapter(tmp_path)


def test_should_stop_interrupts_training_without_adapter(tmp_path):
    answers = iter([False, False, False, True])
    log = Recorder()

    with pytest.raises(TrainingStopped) as caught:
        train(
            TrainingConfig(max_steps=50), SAMPLE / "sentiment.csv", tmp_path / "adapter", log, should_stop=lambda: next(answers)
        )

    assert caught.value.step == 4
    assert log.steps_with("loss") == [1, 2, 3]
    assert not (tmp_path / "adapter").exists()


def test_reports_lora_parameter_counts_and_the_effective_length_as_params(tmp_path):
    params = []

    train(TrainingConfig(epochs=2, batch_size=16), SAMPLE / "sentiment.csv", tmp_path / "a", Recorder(), log_params=params.append)

    (logged,) = params
    buckets, hidden = load_base("tiny-base").weights["fc1.weight"].T.shape
    lora = 8 * (buckets + hidden) + 8 * (hidden + 3)
    assert logged["trainable_params"] == lora and logged["lora_target_modules"] == ["fc1", "fc2"]
    assert logged["total_params"] == lora + buckets * hidden + hidden + hidden * 3 + 3
    assert (logged["steps_per_epoch"], logged["total_steps"], logged["effective_epochs"]) == (150, 300, 2.0)


def test_max_steps_decides_the_effective_epochs(tmp_path):
    params = []

    train(TrainingConfig(epochs=5, max_steps=30), SAMPLE / "sentiment.csv", tmp_path / "a", Recorder(), log_params=params.append)

    assert (params[0]["total_steps"], params[0]["effective_epochs"]) == (30, 0.2)


@pytest.mark.parametrize("special", ["all-linear", "auto"])
def test_all_linear_and_auto_adapt_both_layers(tmp_path, special):
    result, _ = run(tmp_path, max_steps=2, target_modules=[special])

    assert load_adapter(result.adapter_dir).config["target_modules"] == ["fc1", "fc2"]


def test_missing_base_model_names_the_path_and_the_build_script(tmp_path):
    with pytest.raises(ValidationError) as caught:
        train(TrainingConfig(max_steps=1), SAMPLE / "sentiment.csv", tmp_path / "adapter", Recorder(), models_dir=tmp_path)
    assert f"base model 'tiny-base' not found in {tmp_path} (there are no models here yet)" in str(caught.value)
    assert "make_sample_data" in str(caught.value)


def test_missing_label_column_names_file_and_column(tmp_path):
    path = write_csv(tmp_path, text=["tasty", "cold"])

    with pytest.raises(DatasetError) as caught:
        run(tmp_path, dataset=path)

    assert str(path) in str(caught.value)
    assert "'label'" in str(caught.value)


@pytest.mark.parametrize(
    ("labels", "hint"),
    [(["positive", "meh"], "meh"), ([0, 7], "outside 0..2"), ([0.5, 1.5], "Float64"), (["positive", None], "empty cells")],
    ids=["unknown-name", "index-out-of-range", "float", "empty"],
)
def test_labels_the_base_cannot_predict_are_rejected(tmp_path, labels, hint):
    path = write_csv(tmp_path, text=["tasty soup", "cold fries"], label=labels)
    with pytest.raises(DatasetError, match=hint):
        run(tmp_path, dataset=path)


def test_labels_may_be_class_indices(tmp_path):
    path = write_csv(tmp_path, text=["tasty soup", "cold fries", "open on monday"] * 5, label=[2, 0, 1] * 5)
    result, _ = run(tmp_path, dataset=path, max_steps=3)
    assert result.steps == 3


def test_sample_formats_train_identically(tmp_path):
    logs = [
        run(tmp_path / name, dataset=SAMPLE / name, max_steps=10)[1].without_throughput()
        for name in ("sentiment.csv", "sentiment.jsonl", "sentiment.parquet")
    ]
    assert logs[0] == logs[1] == logs[2]


def test_backprop_matches_finite_differences_with_dropout_on():
    base = load_base("tiny-base")
    rng = np.random.default_rng(0)
    config = TrainingConfig(max_steps=1, lora_rank=2)
    model = builtin._Tuned(base, builtin._init_lora(base, config, ["fc1", "fc2"], rng), scale=2.0)
    for name in model.params:
        model.params[name] += rng.normal(0, 0.1, model.params[name].shape)
    x = base.featurize(["the soup was bland", "what a gripping plot", "we ate there on monday"])
    data = builtin._Split(x, np.array([0, 2, 1]), x @ base.weights["fc1.weight"].T + base.weights["fc1.bias"])
    rows = np.arange(3)

    def loss_and_grads():
        return model.loss_and_grads(data, rows, dropout=0.3, rng=np.random.default_rng(5))  # same mask every call

    _, grads = loss_and_grads()

    seen = int(np.flatnonzero(x[0])[0])  # a hash bucket the batch uses, so its gradient is not trivially 0
    for name, index in [("fc1.lora_A", (1, seen)), ("fc1.lora_B", (3, 1)), ("fc2.lora_A", (0, 7)), ("fc2.lora_B", (2, 1))]:
        original = model.params[name][index]
        model.params[name][index] = original + 1e-6
        up, _ = loss_and_grads()
        model.params[name][index] = original - 1e-6
        down, _ = loss_and_grads()
        model.params[name][index] = original
        assert grads[name][index] == pytest.approx((up - down) / 2e-6, rel=1e-4, abs=1e-8)


@pytest.mark.parametrize("name", ["../tiny-base", "/etc", "../../etc/passwd"])
def test_base_model_outside_the_models_folder_is_refused(name):
    with pytest.raises(ValidationError, match="must be a folder name inside"):
        load_base(name)


def test_a_mistyped_base_model_is_answered_with_the_closest_one_here():
    with pytest.raises(ValidationError, match=r"^base model 'tiny-bsae' not found; did you mean 'tiny-base'\?$"):
        load_base("tiny-bsae")


def test_an_unknown_base_model_lists_the_models_here(tmp_path):
    """Only the models the builtin trainer can tune: a Hugging Face model beside them is not offered."""
    for name, model_type in (("llama-lora-base", builtin.MODEL_TYPE), ("gpt-2-small", "gpt2")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"")
        (tmp_path / name / "config.json").write_text(json.dumps({"model_type": model_type}))

    with pytest.raises(ValidationError, match=r"base model 'gpt-9' not found in .* \(the models here are llama-lora-base\)"):
        load_base("gpt-9", tmp_path)
