"""Build the sample dataset, the frozen tiny-base model the builtin trainer fine-tunes, and tiny-gpt2 for peft.

Run from the repository root: ``python -m scripts.make_sample_data``. Seeds are fixed and nothing is
downloaded, so two runs write identical files. The base is pre-trained on product reviews; the sample
data is restaurant and film reviews, where new words matter and some old ones flip meaning, so the
base alone is mediocre there and a LoRA adapter has something real to learn.
"""

import json
import random
from pathlib import Path

import numpy as np
import polars as pl
from safetensors.numpy import save_file

from jobs.trainers.builtin import MODEL_TYPE, featurize
from scripts.tiny_lm import write_tiny_lm

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["negative", "neutral", "positive"]
HASH_BUCKETS, HIDDEN = 1024, 64
SAMPLE_ROWS, SOURCE_ROWS, LABEL_NOISE, SHARED_SHARE = 3000, 3000, 0.04, 0.5

DAYS = ["monday", "tuesday", "friday", "saturday", "sunday"]
PEOPLE = ["sister", "dad", "friends", "partner", "kids"]
SHARED_POS = ["great", "excellent", "fantastic", "wonderful"]
SHARED_NEG = ["terrible", "awful", "disappointing", "poor"]

SOURCE = {
    "items": ["blender", "charger", "lamp", "kettle", "backpack", "headphones", "keyboard", "vacuum", "toaster", "mug"],
    "positive": ["sturdy", "reliable", "durable", "comfortable", "fast", "solid", "light", "quiet", "predictable"],
    "negative": ["flimsy", "useless", "defective", "broken", "cheap", "slow", "noisy", "unpredictable", "leaky"],
    "positive_templates": [
        "the {item} is {adj}",
        "{adj} {item}",
        "this {item} is {adj} and {adj2}",
        "i love this {adj} {item}",
        "highly recommend this {item}, {adj}",
        "works perfectly, {adj} {item}",
    ],
    "negative_templates": [
        "the {item} is {adj}",
        "{adj} {item}",
        "this {item} is {adj} and {adj2}",
        "the {item} broke after a week",
        "{adj} {item}, want a refund",
        "waste of money, {adj} {item}",
    ],
    "neutral_templates": [
        "the {item} arrived on {day}",
        "the {item} comes in blue",
        "i bought this {item} for my {person}",
        "shipping took {n} days",
        "the {item} box includes a manual",
        "it is a {item}",
    ],
}
TARGET = {
    "items": [
        "soup",
        "pasta",
        "burger",
        "curry",
        "pizza",
        "tacos",
        "dessert",
        "plot",
        "ending",
        "acting",
        "soundtrack",
        "sequel",
    ],
    "positive": [
        "delicious",
        "flavorful",
        "gripping",
        "hilarious",
        "cozy",
        "crispy",
        "tender",
        "charming",
        "stunning",
        "unpredictable",
        "cheap",
    ],
    "negative": ["bland", "soggy", "stale", "greasy", "boring", "overcooked", "rude", "dull", "predictable", "light", "slow"],
    "positive_templates": [
        "the {item} was {adj}",
        "the {item} is {adj}",
        "{adj} {item}",
        "the {item} was {adj} and {adj2}",
        "honestly the {item} was {adj}",
        "what a {adj} {item}",
        "we would go back, the {item} was {adj}",
    ],
    "negative_templates": [
        "the {item} was {adj}",
        "the {item} is {adj}",
        "{adj} {item}",
        "the {item} was {adj} and {adj2}",
        "sadly the {item} was {adj}",
        "the {item} was not {pos}",
        "never again, the {item} was {adj}",
    ],
    "neutral_templates": [
        "we ate there on {day}",
        "the {item} comes with a side",
        "the film runs {n} minutes",
        "we went with my {person}",
        "the menu lists {n} dishes",
        "we saw the {item} on {day}",
    ],
}


def main(root: Path = ROOT) -> None:
    """Writes data/sample and data/models under `root` (the repository unless a test says otherwise)."""
    rng = random.Random(7)
    write_base(pretrain(reviews(SOURCE, SOURCE_ROWS, rng), seed=11), root / "data" / "models" / "tiny-base")
    sample = reviews(TARGET, SAMPLE_ROWS, rng)
    write_dataset(sample, root / "data" / "sample")
    write_tiny_lm(sample["text"].to_list(), root / "data" / "models" / "tiny-gpt2", seed=13)


def reviews(domain: dict, n: int, rng: random.Random) -> pl.DataFrame:
    """Balanced labelled sentences from one domain, with a little label noise as in real annotations."""
    labels = [LABELS[i % len(LABELS)] for i in range(n)]
    texts = [_sentence(domain, label, rng) for label in labels]
    noisy = [rng.choice(LABELS) if rng.random() < LABEL_NOISE else label for label in labels]
    return pl.DataFrame({"text": texts, "label": noisy})


def _sentence(domain: dict, label: str, rng: random.Random) -> str:
    template = rng.choice(domain[f"{label}_templates"])
    adjectives = [_adjective(domain, label, rng) for _ in range(2)]
    return template.format(
        adj=adjectives[0],
        adj2=adjectives[1],
        pos=rng.choice(SHARED_POS + domain["positive"]),
        item=rng.choice(domain["items"]),
        day=rng.choice(DAYS),
        person=rng.choice(PEOPLE),
        n=rng.randint(2, 120),
    )


def _adjective(domain: dict, label: str, rng: random.Random) -> str:
    """Mostly domain words; some shared ones that mean the same in both domains."""
    if label == "neutral":
        return ""
    shared = SHARED_POS if label == "positive" else SHARED_NEG
    return rng.choice(shared) if rng.random() < SHARED_SHARE else rng.choice(domain[label])


def pretrain(df: pl.DataFrame, seed: int, steps: int = 150, lr: float = 0.01) -> dict[str, np.ndarray]:
    """Full-batch Adam on every weight of fc1 -> ReLU -> fc2: the 'pre-training' the adapters build on."""
    x = featurize(df["text"].to_list(), HASH_BUCKETS)
    y = np.array([LABELS.index(label) for label in df["label"]])
    rng = np.random.default_rng(seed)
    w = {
        "fc1.weight": rng.normal(0, 1 / np.sqrt(HASH_BUCKETS), (HIDDEN, HASH_BUCKETS)),
        "fc1.bias": np.zeros(HIDDEN),
        "fc2.weight": rng.normal(0, 1 / np.sqrt(HIDDEN), (len(LABELS), HIDDEN)),
        "fc2.bias": np.zeros(len(LABELS)),
    }
    m = {k: np.zeros_like(v) for k, v in w.items()}
    v = {k: np.zeros_like(v) for k, v in w.items()}
    for t in range(1, steps + 1):
        for k, g in _gradients(w, x, y).items():
            m[k] = 0.9 * m[k] + 0.1 * g
            v[k] = 0.999 * v[k] + 0.001 * g * g
            w[k] -= lr * (m[k] / (1 - 0.9**t)) / (np.sqrt(v[k] / (1 - 0.999**t)) + 1e-8)
    return w


def _gradients(w: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    z1 = x @ w["fc1.weight"].T + w["fc1.bias"]
    h = np.maximum(z1, 0)
    logits = h @ w["fc2.weight"].T + w["fc2.bias"]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    g2 = p / len(y)
    g1 = (g2 @ w["fc2.weight"]) * (z1 > 0)
    return {"fc1.weight": g1.T @ x, "fc1.bias": g1.sum(0), "fc2.weight": g2.T @ h, "fc2.bias": g2.sum(0)}


def write_base(weights: dict[str, np.ndarray], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.astype(np.float32) for k, v in weights.items()}, out / "model.safetensors")
    config = {
        "model_type": MODEL_TYPE,
        "labels": LABELS,
        "hash_buckets": HASH_BUCKETS,
        "hashing": "crc32 of lowercase words and word pairs mod hash_buckets, L2-normalised counts",
        "hidden_size": HIDDEN,
        "architecture": "fc1 -> relu -> fc2",
        "pretrained_on": "synthetic product reviews (scripts/make_sample_data.py)",
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def write_dataset(df: pl.DataFrame, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    df.write_csv(out / "sentiment.csv")
    df.write_ndjson(out / "sentiment.jsonl")
    df.write_parquet(out / "sentiment.parquet")


if __name__ == "__main__":
    main()
