"""A tiny GPT-2 causal LM, written as a Hugging Face model folder without torch or the hub.

Everything is plain JSON and numpy from fixed seeds, so two builds are byte-identical on any
machine: config.json, model.safetensors (GPT-2 tensor names, the LM head tied to the
embeddings), and a word-level tokenizer whose vocabulary is the sample data's words.
"""

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

PAD, UNK, EOS = "[PAD]", "[UNK]", "[EOS]"
WORD = re.compile(r"\w+|[^\w\s]+")  # what the tokenizers library's Whitespace pre-tokenizer splits on
SHAPE = {"n_layer": 2, "n_head": 2, "n_embd": 32, "n_positions": 64}
INIT_STD = 0.02
# Token embeddings at the scale of a trained model's rather than GPT-2's 0.02: the LM head is tied to
# them and frozen under LoRA, and at 0.02 its logits could never move far from uniform.
EMBEDDING_STD = 0.2


def write_tiny_lm(texts: list[str], out: Path, seed: int) -> None:
    """The model folder `out`: a vocabulary from `texts`, GPT-2 weights initialised as GPT-2 does."""
    out.mkdir(parents=True, exist_ok=True)
    vocab = vocabulary(texts)
    _write_json(out / "config.json", model_config(len(vocab)))
    _write_json(out / "generation_config.json", {"eos_token_id": vocab[EOS], "pad_token_id": vocab[PAD]})
    _write_json(out / "tokenizer.json", tokenizer_json(vocab))
    _write_json(out / "tokenizer_config.json", tokenizer_config())
    save_file(weights(len(vocab), seed), out / "model.safetensors", metadata={"format": "pt"})


def vocabulary(texts: list[str]) -> dict[str, int]:
    """Special tokens first, then words by falling frequency (ties alphabetical): a stable order."""
    counts = Counter(word for text in texts for word in WORD.findall(text.lower()))
    words = sorted(counts, key=lambda word: (-counts[word], word))
    return {token: index for index, token in enumerate([PAD, UNK, EOS, *words])}


def model_config(vocab_size: int) -> dict:
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": vocab_size,
        **SHAPE,
        "n_inner": None,
        "activation_function": "gelu_new",
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": INIT_STD,
        "bos_token_id": 2,
        "eos_token_id": 2,
        "pad_token_id": 0,
        "tie_word_embeddings": True,
        "use_cache": True,
        "tunedeck_built_by": "python -m scripts.make_sample_data",
    }


def weights(vocab_size: int, seed: int) -> dict[str, np.ndarray]:
    """GPT-2's initialisation (N(0, 0.02), residual projections scaled by 1/sqrt(2 * layers), unit layer
    norms) but for the token embeddings, which are drawn larger (EMBEDDING_STD)."""
    rng = np.random.default_rng(seed)
    d, layers = SHAPE["n_embd"], SHAPE["n_layer"]
    residual_std = INIT_STD / np.sqrt(2 * layers)

    def normal(shape: tuple[int, ...], std: float = INIT_STD) -> np.ndarray:
        return rng.normal(0.0, std, shape).astype(np.float32)

    tensors = {
        "transformer.wte.weight": normal((vocab_size, d), EMBEDDING_STD),
        "transformer.wpe.weight": normal((SHAPE["n_positions"], d)),
    }
    for layer in range(layers):
        prefix = f"transformer.h.{layer}."
        tensors |= {
            f"{prefix}attn.c_attn.weight": normal((d, 3 * d)),
            f"{prefix}attn.c_attn.bias": np.zeros(3 * d, np.float32),
            f"{prefix}attn.c_proj.weight": normal((d, d), residual_std),
            f"{prefix}attn.c_proj.bias": np.zeros(d, np.float32),
            f"{prefix}mlp.c_fc.weight": normal((d, 4 * d)),
            f"{prefix}mlp.c_fc.bias": np.zeros(4 * d, np.float32),
            f"{prefix}mlp.c_proj.weight": normal((4 * d, d), residual_std),
            f"{prefix}mlp.c_proj.bias": np.zeros(d, np.float32),
            **_layer_norm(f"{prefix}ln_1", d),
            **_layer_norm(f"{prefix}ln_2", d),
        }
    return tensors | _layer_norm("transformer.ln_f", d)


def tokenizer_json(vocab: dict[str, int]) -> dict:
    """The tokenizers library's format: lowercase, split on words and punctuation, look words up."""
    special = [PAD, UNK, EOS]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": vocab[token], "content": token, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
            for token in special
        ],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": UNK},
    }


def tokenizer_config() -> dict:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": SHAPE["n_positions"],
        "pad_token": PAD,
        "unk_token": UNK,
        "eos_token": EOS,
        "padding_side": "right",
    }


def _layer_norm(name: str, size: int) -> dict[str, np.ndarray]:
    return {f"{name}.weight": np.ones(size, np.float32), f"{name}.bias": np.zeros(size, np.float32)}


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
