"""Adapter references as users write them: `sentiment`, `sentiment@3`, `sentiment@production`.

Parsed here once, so the store, the SDK and the pages agree on what a reference means.
"""

import re
from dataclasses import dataclass

from core.errors import ValidationError, quoted

LATEST = "latest"  # always the newest version: never stored as an alias
MAX_ALIAS = 64
ALIAS = re.compile(rf"^[A-Za-z][A-Za-z0-9_\-]{{0,{MAX_ALIAS - 1}}}$")


@dataclass(frozen=True)
class AdapterReference:
    """An adapter name and at most one of a version or an alias; neither means the latest version."""

    name: str
    version: int | None = None
    alias: str | None = None


def checked_alias(alias: object) -> str:
    """An alias names a role (production, candidate): a letter, then letters, digits, _ or -; not `latest`. Case does
    not tell aliases apart, as with `latest`: `@Production` and `@production` are one alias, kept in lower case."""
    if isinstance(alias, str) and not alias.strip():
        raise ValidationError("an alias must not be empty", {"alias": "must not be empty"})
    if isinstance(alias, str) and len(alias.strip()) > MAX_ALIAS:
        why = f"is too long: at most {MAX_ALIAS} characters are allowed, and this one has {len(alias.strip()):,}"
        raise ValidationError(f"the alias {why}", {"alias": why})
    if not isinstance(alias, str) or not ALIAS.fullmatch(alias.strip()):
        why = f"{quoted(str(alias)[:70])} is not valid: start with a letter, then use letters, digits, _ or -"
        raise ValidationError(f"alias {why}", {"alias": why})
    alias = alias.strip()
    if alias.lower() == LATEST:
        raise ValidationError(
            f"{quoted(LATEST)} always means the newest version; pick another alias",
            {"alias": f"is reserved: {quoted(LATEST)} always means the newest version; pick another"},
        )
    return alias.lower()


def parse_reference(text: object) -> AdapterReference:
    """'name', 'name@3' (a version), 'name@latest' or 'name@alias'; the last '@' splits, so names may hold one."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("an adapter reference is a name, name@version or name@alias, e.g. 'sentiment@production'")
    name, at, suffix = text.strip().rpartition("@")
    if not at:
        return AdapterReference(suffix)
    if not name.strip():
        raise ValidationError(f"{quoted(text.strip()[:80])} has no adapter name before '@'; write e.g. 'sentiment@production'")
    name, suffix = name.strip(), suffix.strip()
    if suffix.isdigit():
        return AdapterReference(name, version=int(suffix))
    if suffix.lower() == LATEST:
        return AdapterReference(name)
    return AdapterReference(name, alias=checked_alias(suffix))
