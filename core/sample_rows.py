"""Prediction samples: what a run answered on a fixed set of eval examples at an evaluation step.

A sample row is checked here, at the boundary, by the SDK before it sends and by the store when it
receives; sizes are bounded so one call cannot flood the store (the limits are in the messages).
"""

import json
import math
from typing import Annotated, Any

import numpy as np
import polars as pl
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from core.entities import without_nul
from core.errors import ValidationError
from core.validation import field_errors

MAX_TEXT = 10_000  # characters in one input, reference or prediction
MAX_EXTRA = 2_000  # characters of one row's extra settings, as JSON
MAX_ROWS = 1_000  # rows in one call
MAX_CALL_TEXT = 2_000_000  # characters in one call, all texts together
SAMPLE_SEED = 4321  # fixed, not the training seed: every run of an experiment answers the same examples
SAMPLE_COLUMNS = {
    "run_id": pl.Int64,
    "step": pl.Int64,
    "example_id": pl.String,
    "position": pl.Int32,
    "input": pl.String,
    "reference": pl.String,
    "prediction": pl.String,
    "score": pl.Float64,
    "correct": pl.Boolean,
    "extra": pl.String,
}


def _as_text_id(value: Any) -> Any:
    """Example IDs may be given as indices: 7 and "7" are the same example."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _small_json(extra: dict[str, Any]) -> dict[str, Any]:
    try:
        encoded = json.dumps(extra, sort_keys=True, allow_nan=False, default=str)
    except ValueError:
        raise ValueError("must not contain NaN or infinite numbers") from None
    if len(encoded) > MAX_EXTRA:
        raise ValueError(f"is too large: at most {MAX_EXTRA:,} characters as JSON, and this one has {len(encoded):,}")
    return extra


Text = Annotated[str, StringConstraints(max_length=MAX_TEXT), AfterValidator(without_nul)]


class SampleRow(BaseModel):
    """One example's outcome: its input, the expected answer, what the model answered, and how well."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    example_id: Annotated[str, StringConstraints(min_length=1, max_length=200), BeforeValidator(_as_text_id)]
    input: Text
    reference: Text | None = None
    prediction: Text
    score: Annotated[float | None, AfterValidator(_finite)] = Field(
        default=None, description="correct (1/0), a loss, or a text similarity: higher or lower as the trainer says"
    )
    correct: bool | None = Field(default=None, description="None: judged as prediction == reference")
    extra: Annotated[dict[str, Any], AfterValidator(_small_json)] = Field(
        default_factory=dict, description="confidence, decoding settings, ..."
    )


_ROWS = TypeAdapter(Annotated[list[SampleRow], Field(max_length=MAX_ROWS)])


def checked_samples(rows: Any) -> list[SampleRow]:
    """The rows as SampleRow, or ValidationError naming the first rule they break; example IDs are unique."""
    if isinstance(rows, dict | str | bytes) or not hasattr(rows, "__iter__"):
        raise ValidationError(f"samples must be a list of rows (dicts), got {type(rows).__name__}")
    rows = list(rows)
    if len(rows) > MAX_ROWS:
        raise ValidationError(f"too many samples in one call: at most {MAX_ROWS:,} rows, got {len(rows):,}; log fewer examples")
    try:
        checked = _ROWS.validate_python(rows)
    except PydanticValidationError as error:
        errors = field_errors(error, "samples")
        detail = "; ".join(f"{_where(field)} {text}" for field, text in errors.items())
        raise ValidationError(f"invalid samples: {detail}", errors) from None
    total = sum(len(row.input) + len(row.reference or "") + len(row.prediction) for row in checked)
    if total > MAX_CALL_TEXT:
        raise ValidationError(
            f"the samples hold {total:,} characters of text; one call takes at most {MAX_CALL_TEXT:,}: log fewer or shorter examples"
        )
    seen: set[str] = set()
    for row in checked:
        if row.example_id in seen:
            raise ValidationError(
                f"example_id {row.example_id!r} appears twice in one call; each example is logged once per step"
            )
        seen.add(row.example_id)
    return checked


def _where(field: str) -> str:
    """'3.input' -> 'row 4: input': rows are counted from 1 for people."""
    index, _, name = field.partition(".")
    return f"row {int(index) + 1}: {name}" if index.isdigit() and name else field


def samples_frame(run_id: int, step: int, rows: list[SampleRow]) -> pl.DataFrame:
    """The rows as the store keeps them (extra as JSON text, position = order in the call)."""
    return pl.DataFrame(
        {
            "run_id": [run_id] * len(rows),
            "step": [step] * len(rows),
            "example_id": [row.example_id for row in rows],
            "position": list(range(len(rows))),
            "input": [row.input for row in rows],
            "reference": [row.reference for row in rows],
            "prediction": [row.prediction for row in rows],
            "score": [row.score for row in rows],
            "correct": [row.correct for row in rows],
            "extra": [json.dumps(row.extra, sort_keys=True, default=str) for row in rows],
        },
        schema=SAMPLE_COLUMNS,
    )


def sample_positions(n_eval: int, size: int) -> list[int]:
    """`size` positions among `n_eval` held-out rows (all of them when there are fewer), in order."""
    chosen = np.random.default_rng(SAMPLE_SEED).choice(n_eval, size=min(size, n_eval), replace=False)
    return sorted(int(position) for position in chosen)


def label_row(example_id: int, text: str, reference: str, predicted: str, confidence: float) -> dict[str, Any]:
    """A classifier's answer: correct scores 1, wrong 0; its confidence goes in extra."""
    correct = predicted == reference
    return {
        "example_id": example_id,
        "input": text,
        "reference": reference,
        "prediction": predicted,
        "score": float(correct),
        "correct": correct,
        "extra": {"confidence": round(float(confidence), 4)},
    }
