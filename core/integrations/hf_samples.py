"""What a Hugging Face model (or a PEFT adapter on one) answers on eval examples, as sample rows.

A sequence classifier gives its label and confidence; a causal LM continues the input with greedy
decoding, scored by word overlap with the reference (1.0 = the same words in the same order).
Importing this module imports nothing heavy; torch is imported by the calls that need it.
"""

import difflib
from typing import Any

from core.sample_rows import label_row

MAX_NEW_TOKENS = 20  # a continuation long enough to read, short enough for a CPU at every eval
MAX_INPUT_TOKENS = 256


def decoding(max_new_tokens: int = MAX_NEW_TOKENS) -> dict[str, Any]:
    """The decoding settings used, logged with each generation so runs are compared like for like."""
    return {"do_sample": False, "num_beams": 1, "max_new_tokens": max_new_tokens}


def is_classifier(model) -> bool:
    return "ForSequenceClassification" in type(model).__name__


def word_similarity(prediction: str, reference: str) -> float:
    """Difflib's ratio over words: the share of words the two texts have in common, in order."""
    return round(difflib.SequenceMatcher(None, prediction.split(), reference.split()).ratio(), 4)


def prompt_and_reference(prompt: str, completion: str) -> tuple[str, str]:
    """A text without a prompt is shown its first half and asked for the rest."""
    if prompt:
        return prompt, completion
    words = completion.split()
    half = max(1, len(words) // 2)
    return " ".join(words[:half]), " ".join(words[half:])


def answer_rows(model, tokenizer, examples: list[dict[str, Any]], max_new_tokens: int = MAX_NEW_TOKENS) -> list[dict]:
    """Sample rows for `examples` (dicts with example_id, input, reference): a label or a generation each."""
    import torch

    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if is_classifier(model):
                return [_classified(model, tokenizer, example) for example in examples]
            return [_generated(model, tokenizer, example, max_new_tokens) for example in examples]
    finally:
        model.train(training)


def classify(model, tokenizer, text: str) -> tuple[str, float]:
    """The label a sequence classifier gives `text`, and its probability."""
    import torch

    encoded = tokenizer(text, return_tensors="pt", truncation=True, max_length=MAX_INPUT_TOKENS).to(model.device)
    probs = torch.softmax(model(**encoded).logits[0], dim=-1)
    index = int(probs.argmax())
    labels = model.config.id2label or {}
    return str(labels.get(index, index)), float(probs[index])


def generate(model, tokenizer, text: str, max_new_tokens: int = MAX_NEW_TOKENS) -> str:
    """The continuation of `text` by greedy decoding (the prompt itself left out)."""
    encoded = tokenizer(text, return_tensors="pt", truncation=True, max_length=MAX_INPUT_TOKENS).to(model.device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    output = model.generate(**encoded, **decoding(max_new_tokens), pad_token_id=pad)
    return tokenizer.decode(output[0][encoded["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def _classified(model, tokenizer, example: dict) -> dict:
    label, confidence = classify(model, tokenizer, example["input"])
    return label_row(example["example_id"], example["input"], str(example["reference"]), label, confidence)


def _generated(model, tokenizer, example: dict, max_new_tokens: int) -> dict:
    prediction = generate(model, tokenizer, example["input"], max_new_tokens)
    reference = example.get("reference")
    return {
        "example_id": example["example_id"],
        "input": example["input"],
        "reference": reference,
        "prediction": prediction,
        "score": word_similarity(prediction, reference) if reference is not None else None,
        "correct": prediction.strip() == reference.strip() if reference is not None else None,
        "extra": {"decoding": decoding(max_new_tokens)},
    }
