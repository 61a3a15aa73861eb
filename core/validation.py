"""Turn Pydantic's errors into one human sentence per field, raised as our ValidationError."""

from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from core.errors import ValidationError

_CHARACTER_CLASSES = {  # "unaccented": é or 名 are letters to a person, and these patterns refuse them
    "A-Za-z": "unaccented letters",
    "a-z": "unaccented lower-case letters",
    "A-Z": "unaccented capitals",
    "0-9": "digits",
    " ": "spaces",
}


def allowed_characters(pattern: str) -> str:
    """'^[A-Za-z0-9_.\\-]+$' -> 'unaccented letters, digits and _ . -': a character-class pattern in words."""
    inside = pattern.removeprefix("^[").removesuffix("]+$").replace("\\", "")
    words = []
    for text, word in _CHARACTER_CLASSES.items():
        if text in inside:
            words.append(word)
            inside = inside.replace(text, "")
    symbols = " ".join(inside)
    return ", ".join(words) + (f" and {symbols}" if symbols else "")


# A number's bounds in words, by Pydantic's names for them: the new-run form's help and these messages say them alike.
BOUND_WORDS = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}


def bound_text(number: int | float) -> str:
    """A bound as a person writes it: 10,000 and 0, not 10000 and 0.0 (Pydantic hands float fields' bounds over as
    floats); 0.5 as it is."""
    return f"{int(number):,}" if isinstance(number, float) and number.is_integer() else f"{number:,}"


def as_typed(number: float | int | None) -> str:
    """A default as a person types it: 16, not 16.0; every other float exactly as stored (a cloned run's 1.23456789e-05)."""
    if number is None:
        return ""
    if isinstance(number, float) and number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return str(number)


def _message(item: dict) -> str:
    """One error as the end of a sentence that starts with the field's name: 'name must not be empty'."""
    kind, context = item["type"], item.get("ctx") or {}
    if kind == "extra_forbidden":
        return "is not a known setting (check the spelling)"
    if kind == "missing":
        return "is required"
    if kind == "string_too_short":
        minimum = context.get("min_length", 1)
        return "must not be empty" if minimum == 1 else f"must be at least {minimum} characters long"
    if kind == "string_too_long":
        return (
            f"is too long: at most {context.get('max_length', 0):,} characters are allowed, "
            f"and this one has {len(str(item.get('input', ''))):,}"
        )
    if kind == "string_pattern_mismatch":
        return f"may only contain {allowed_characters(str(context.get('pattern', '')))}"
    if kind == "string_type":
        return "must be text"
    if kind == "int_parsing":
        return "must be a whole number"
    if kind == "int_parsing_size":  # 1e308 for epochs: past any bound the field has, which Pydantic never reaches
        return "must be a whole number of ordinary size"
    if kind == "int_from_float":
        return "must be a whole number"
    if kind == "float_parsing":
        return "must be a valid number"
    if kind == "finite_number" and _written_out(item.get("input")):
        return "must be a number of ordinary size (this one is past 1.8e308, the largest a number here can be)"
    bound = next((name for name in context if name in BOUND_WORDS), None)
    if bound and isinstance(context[bound], int | float) and not isinstance(context[bound], bool):
        return f"must be {BOUND_WORDS[bound]} {bound_text(context[bound])}"  # as the field's help writes it
    text = item["msg"].removeprefix("Value error, ")
    for prefix in ("Input should", "Value should", "List should", "String should"):
        if text.startswith(prefix):
            return "must" + text.removeprefix(prefix)
    return text


def _written_out(given: Any) -> bool:
    """Digits typed that overflowed to infinity (1e400, a pasted 400-digit number), not 'inf' or NaN meant as such."""
    text = given.strip().lower() if isinstance(given, str) else ""
    return bool(text) and "inf" not in text and "nan" not in text


def labelled(label: str, text: str) -> str:
    """'epochs must be ...', but 'trainer: unknown trainer ...': a message that does not go on from the name gets a colon."""
    if text.lower().startswith(label.lower() + " "):  # the message names the field itself: not "dataset: dataset x"
        return text
    return f"{label} {text}" if text.startswith(("must ", "is ", "may ")) else f"{label}: {text}"


def field_errors(error: PydanticValidationError, what: str) -> dict[str, str]:
    messages: dict[str, str] = {}
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or what
        messages.setdefault(field, _message(item))
    return messages


def friendly(schema: type[BaseModel] | TypeAdapter, value: Any, what: str) -> Any:
    """Validate value against a model or type adapter; bad input raises ValidationError naming each field."""
    if isinstance(value, BaseModel) and isinstance(schema, type) and isinstance(value, schema):
        return value
    try:
        if isinstance(schema, TypeAdapter):
            return schema.validate_python(value)
        return schema.model_validate(value)
    except PydanticValidationError as error:
        errors = field_errors(error, what)
        if list(errors) == [what]:  # about the whole value: "the run name must not be empty", "training config: set ..."
            text = errors[what]
            sentence = f"the {what} {text}" if text.startswith(("must ", "is ", "may ")) else f"{what}: {text}"
            raise ValidationError(sentence, errors) from None
        detail = "; ".join(labelled(field, text) for field, text in errors.items())
        raise ValidationError(f"invalid {what}: {detail}", errors) from None
