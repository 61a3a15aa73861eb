"""Turn Pydantic's errors into one human sentence per field, raised as our ValidationError."""

from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from core.errors import ValidationError

T = TypeVar("T")


def field_errors(error: PydanticValidationError, what: str) -> dict[str, str]:
    messages: dict[str, str] = {}
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or what
        text = item["msg"]
        if item["type"] == "extra_forbidden":
            text = "is not a known setting (check the spelling)"
        elif item["type"] == "missing":
            text = "is required"
        messages.setdefault(field, text.removeprefix("Value error, "))
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
        detail = "; ".join(f"{field}: {text}" if field != what else text for field, text in errors.items())
        raise ValidationError(f"invalid {what}: {detail}", errors) from None
