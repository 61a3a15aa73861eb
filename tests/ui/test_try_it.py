"""The try-it box, through AppTest: the answer shown is the adapter's own prediction, computed directly."""

import shutil
import threading
from pathlib import Path

import polars as pl
import pytest

from core.artifacts import describe_adapter
from core.errors import TuneDeckError, ValidationError
from core.models import SHIPPED_MODELS
from core.training_config import TrainingConfig
from jobs import inference
from jobs.trainers import builtin
from tests.apptest import as_shown
from tests.jobs.recorder import Recorder
from tests.optional import require
from tests.ui.conftest import SAMPLE
from tests.waiting import wait_for
from ui.try_it import _answerer

TEXT = "the soup was cold and bland"


def register(store, adapter_dir: Path, base_model: str, name: str) -> tuple[int, int]:
    """A completed run that registered the adapter in `adapter_dir`; returns (run ID, adapter ID)."""
    experiment = store.find_experiment("try it")
    experiment_id = experiment.id if experiment else store.create_experiment({"name": "try it", "dataset": SAMPLE})
    run_id = store.create_run(experiment_id, {"epochs": 1}, name=name)
    store.mark_running(run_id, worker="host:1")
    adapter = store.complete_run(run_id, describe_adapter(adapter_dir, base_model, name=name))
    return run_id, adapter.id


def builtin_adapter(tmp_path: Path, seed: int) -> Path:
    folder = tmp_path / f"builtin-{seed}"
    builtin.train(TrainingConfig(max_steps=40, seed=seed, learning_rate=0.05), SAMPLE, folder, Recorder())
    return folder


def ask(app, key: str, text: str = TEXT):
    shown = [e.value for e in [*app.error, *app.warning, *app.caption]]
    assert f"{key}_input" in [area.key for area in app.text_area], f"no try-it box; the page shows {shown}"
    app.text_area(key=f"{key}_input").input(text)
    app.button(key=f"{key}_go").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    return app


def test_the_builtin_adapters_answer_is_its_prediction_computed_directly(open_page, app_store, tmp_path):
    folder = builtin_adapter(tmp_path, seed=1)
    _, adapter_id = register(app_store, folder, "tiny-base", "builtin-try")

    app = ask(open_page("pages/adapters.py", adapter=str(adapter_id)), "try")

    label, confidence = builtin.load_tuned(folder).answer([TEXT])[0]
    assert [code.value for code in app.code][-1] == label
    assert f"confidence {confidence:.3f}" in [caption.value for caption in app.caption]


def test_a_paste_over_the_limit_is_kept_and_refused_saying_the_limit(open_page, app_store, tmp_path):
    """Streamlit's own max_chars dropped such a paste and the page said "type some input"."""
    _, adapter_id = register(app_store, builtin_adapter(tmp_path, seed=1), "tiny-base", "builtin-try")
    app = open_page("pages/adapters.py", adapter=str(adapter_id))

    app.text_area(key="try_input").input("x" * (inference.MAX_INPUT + 1))
    app.button(key="try_go").click().run()

    assert [as_shown(error.value) for error in app.error] == [
        f"The input is too long: at most {inference.MAX_INPUT:,} characters, and this one has {inference.MAX_INPUT + 1:,}."
    ]
    assert not [caption for caption in app.caption if caption.value.startswith("confidence")]  # no answer


def test_compare_answers_with_every_compared_runs_adapter(open_page, app_store, tmp_path):
    folders = [builtin_adapter(tmp_path, seed) for seed in (1, 2)]
    run_ids = [register(app_store, folder, "tiny-base", f"seed-{i}")[0] for i, folder in enumerate(folders, start=1)]

    app = ask(open_page("pages/compare.py", runs=",".join(map(str, run_ids))), "try_compare")

    answers = next(frame.value for frame in app.dataframe if "answer" in frame.value.columns)
    expected = [builtin.load_tuned(folder).answer([TEXT])[0][0] for folder in folders]
    assert answers["answer"].tolist() == expected
    assert answers["adapter"].tolist() == [f"seed-{i} (#{run_id})" for i, run_id in enumerate(run_ids, start=1)]
    assert answers["decoding"].tolist() == ["–", "–"]  # a classifier decodes nothing: said, not a blank cell


def test_an_adapter_that_fails_to_load_on_compare_says_so_in_its_own_row_beside_the_others_answers(open_page, app_store, tmp_path):
    folders = [builtin_adapter(tmp_path, seed) for seed in (1, 2)]
    run_ids = [register(app_store, folder, "tiny-base", f"seed-{i}")[0] for i, folder in enumerate(folders, start=1)]
    (folders[1] / "adapter_model.safetensors").unlink()  # its config is there: offered, then it cannot load
    _answerer.clear()

    app = ask(open_page("pages/compare.py", runs=",".join(map(str, run_ids))), "try_compare")

    answers = next(frame.value for frame in app.dataframe if "answer" in frame.value.columns)
    assert answers["answer"].tolist()[0] == builtin.load_tuned(folders[0]).answer([TEXT])[0][0]
    assert answers["answer"].tolist()[1].startswith("no answer: ")


def test_an_empty_input_or_a_missing_folder_gets_a_message_not_a_traceback(open_page, app_store, tmp_path):
    folder = builtin_adapter(tmp_path, seed=3)
    _, adapter_id = register(app_store, folder, "tiny-base", "gone")
    app = open_page("pages/adapters.py", adapter=str(adapter_id))

    app.button(key="try_go").click().run()
    assert "Type some input for the adapter to answer." in [as_shown(e.value) for e in app.error]

    for file in folder.iterdir():
        file.unlink()
    _answerer.clear()  # a loaded adapter stays loaded: this one must be looked for again
    app.text_area(key="try_input").input(TEXT)
    app.button(key="try_go").click().run()
    assert any("adapter_config.json is missing" in as_shown(caption.value) for caption in app.caption)
    assert "try_input" not in [area.key for area in app.text_area]  # no box for an adapter that cannot answer


def toy_adapter(tmp_path: Path) -> Path:
    """A PEFT-style adapter on a base model no folder here holds (as the SDK example's script registers)."""
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4, "base_model_name_or_path": "toy-linear"}')
    return folder


def test_an_adapter_whose_base_model_is_nowhere_here_is_not_offered_and_says_why(open_page, app_store, tmp_path):
    _, adapter_id = register(app_store, toy_adapter(tmp_path), "toy-linear", "toy")

    app = open_page("pages/adapters.py", adapter=str(adapter_id))

    assert "try_input" not in [area.key for area in app.text_area]
    [said] = [as_shown(caption.value) for caption in app.caption if "cannot answer here" in as_shown(caption.value)]
    assert said.startswith("toy v1 cannot answer here: the base model toy-linear is not a Hugging Face model in ")
    assert "the try-it box answers with the built-in trainer's adapters" in said and "training packages" not in said


def test_an_adapter_whose_folder_is_gone_says_so_in_one_question(open_page, app_store, tmp_path):
    _, adapter_id = register(app_store, builtin_adapter(tmp_path, seed=1), "tiny-base", "builtin")
    shutil.rmtree(tmp_path / "builtin-1")

    app = open_page("pages/adapters.py", adapter=str(adapter_id))

    [said] = [as_shown(caption.value) for caption in app.caption if "cannot answer here" in as_shown(caption.value)]
    assert said.endswith("was the folder moved or deleted?")  # not "deleted?."


def test_compare_offers_the_box_for_the_adapters_that_can_answer_and_names_the_others(open_page, app_store, tmp_path):
    can, _ = register(app_store, builtin_adapter(tmp_path, seed=1), "tiny-base", "builtin")
    cannot, _ = register(app_store, toy_adapter(tmp_path), "toy-linear", "toy")

    app = ask(open_page("pages/compare.py", runs=f"{can},{cannot}"), "try_compare")

    assert any(as_shown(caption.value).startswith(f"toy (#{cannot}) cannot answer here: the base model") for caption in app.caption)
    assert [code.value for code in app.code][-1] == builtin.load_tuned(tmp_path / "builtin-1").answer([TEXT])[0][0]


def test_adapters_that_cannot_answer_for_one_reason_are_named_in_one_line(open_page, app_store, tmp_path):
    """Compare with six imported runs printed the same long reason six times."""
    run_ids = []
    for i in range(3):
        (tmp_path / str(i)).mkdir()
        run_ids.append(register(app_store, toy_adapter(tmp_path / str(i)), "toy-linear", f"toy-{i}")[0])

    app = open_page("pages/compare.py", runs=",".join(map(str, run_ids)))

    [said] = [as_shown(caption.value) for caption in app.caption if "cannot answer here" in as_shown(caption.value)]
    assert said.startswith(f"toy-0 (#{run_ids[0]}), toy-1 (#{run_ids[1]}), toy-2 (#{run_ids[2]}) cannot answer here: the base model")


def test_a_peft_adapter_answers_on_the_tiny_model_with_its_greedy_generation(open_page, app_store, tmp_path):
    require("torch", "transformers", "peft", "tokenizers", "accelerate")
    from jobs.trainers import peft_trainer

    data = tmp_path / "texts.csv"
    pl.read_csv(SAMPLE).head(48).write_csv(data)
    folder = tmp_path / "peft"
    peft_trainer.train(TrainingConfig(trainer="peft", max_steps=2, batch_size=8, eval_samples=0), data, folder, Recorder())
    _, adapter_id = register(app_store, folder, "tiny-gpt2", "peft-try")

    app = ask(open_page("pages/adapters.py", adapter=str(adapter_id)), "try", "the soup was")

    assert [code.value for code in app.code][-1] == greedy(folder, "the soup was")
    assert any("max_new_tokens=20" in caption.value for caption in app.caption)


def greedy(folder: Path, text: str) -> str:
    """The adapter's continuation computed directly with PEFT: greedy, 20 new tokens, the prompt left out."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(SHIPPED_MODELS / "tiny-gpt2")
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(SHIPPED_MODELS / "tiny-gpt2"), folder).eval()
    encoded = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        output = model.generate(**encoded, do_sample=False, max_new_tokens=20, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(output[0][encoded["input_ids"].shape[1] :], skip_special_tokens=True).strip()


@pytest.mark.parametrize(
    ("text", "message"), [("   ", "type some input"), ("x" * (inference.MAX_INPUT + 1), "too long")], ids=["blank", "too long"]
)
def test_bad_input_is_refused_before_any_model_runs(text, message):
    with pytest.raises(ValidationError, match=message):
        inference.answer_within(lambda text: pytest.fail("the model ran"), text)


def test_an_answer_that_takes_too_long_ends_with_a_message():
    release = threading.Event()
    with pytest.raises(TuneDeckError, match="longer than 0.1 s"):
        inference.answer_within(lambda text: release.wait(5), "hi", seconds=0.1)
    release.set()


def test_slow_answers_left_to_finish_hold_their_place_so_retries_do_not_pile_up_model_runs():
    release, started = threading.Event(), []

    def slow(text: str) -> inference.Answer:
        started.append(text)
        release.wait(30)
        return inference.Answer("done")

    for attempt in range(inference.MAX_ANSWERING):
        with pytest.raises(TuneDeckError, match="longer than 0.1 s"):
            inference.answer_within(slow, f"try {attempt}", seconds=0.1)
    with pytest.raises(TuneDeckError, match="still working out earlier answers"):
        inference.answer_within(slow, "one more try", seconds=0.1)
    release.set()

    assert started == [f"try {attempt}" for attempt in range(inference.MAX_ANSWERING)]
    assert wait_for(lambda: _answer_or_none("again"), timeout=10, what="the slow answers to finish").text == "again"


def _answer_or_none(text: str) -> inference.Answer | None:
    try:
        return inference.answer_within(lambda text: inference.Answer(text), text)
    except TuneDeckError:
        return None


def test_memory_is_short_past_the_threshold_of_the_machines_memory_in_use():
    assert inference.memory_short(threshold=0.0)
    assert not inference.memory_short(threshold=100.1)


def test_an_adapter_folder_that_cannot_be_read_here_is_a_reason_not_an_error(tmp_path):
    """A folder on a share another machine wrote (unreadable here, a stale mount) must not break the page that asks."""
    unreadable = tmp_path / ("x" * 300)  # a name longer than the file system takes: stat() fails as on such a folder

    said = inference.cannot_answer(str(unreadable), "tiny-base")

    assert said == f"cannot read the adapter at {unreadable} (File name too long)"
