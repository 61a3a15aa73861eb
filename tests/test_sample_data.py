"""The shipped sample data and base models are rebuilt byte for byte by scripts/make_sample_data.py."""

from pathlib import Path

from scripts import make_sample_data
from tests.optional import require

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["data/sample", "data/models/tiny-base", "data/models/tiny-gpt2"]


def files_under(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for folder in SHIPPED
        for path in sorted((root / folder).rglob("*"))
        if path.is_file()
    }


def test_the_build_script_reproduces_every_shipped_file_exactly(tmp_path):
    make_sample_data.main(tmp_path)

    rebuilt, shipped = files_under(tmp_path), files_under(ROOT)
    assert sorted(rebuilt) == sorted(shipped)
    assert [name for name in shipped if rebuilt[name] != shipped[name]] == []


def test_the_shipped_causal_lm_is_small_enough_to_commit():
    folder = ROOT / "data" / "models" / "tiny-gpt2"

    assert sum(path.stat().st_size for path in folder.iterdir()) < 300_000


def test_the_shipped_causal_lm_loads_with_transformers_and_its_tokenizer_reads_the_sample():
    require("torch", "transformers")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = ROOT / "data" / "models" / "tiny-gpt2"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)

    ids = tokenizer("The soup was bland")["input_ids"]
    assert tokenizer.unk_token_id not in ids and tokenizer.decode(ids) == "the soup was bland"
    assert model(**tokenizer("the soup was bland", return_tensors="pt")).logits.shape == (1, 4, len(tokenizer))
