"""The store's URL in team mode (TUNEDECK_STORE_URL=postgresql://...): what it may look like, and how it is shown.

A password may come in the URL, from PGPASSWORD, or from a libpq password file (PGPASSFILE, ~/.pgpass) that only
its owner can read. Whatever the source, a URL is only ever shown through `redacted()`.
"""

import os
import re
import stat
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from core.errors import ValidationError

SCHEMES = ("postgresql", "postgres")
_PASSWORD_PARAM = re.compile(r"(?i)(password=)[^&\s]*")


def is_postgres(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SCHEMES and "://" in url


def redacted(url: str) -> str:
    """The URL with any password replaced by ***: safe for logs, messages and pages."""
    if not url:
        return url
    url = _PASSWORD_PARAM.sub(r"\1***", url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a malformed URL)"
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{name}:***@{host}"))


def checked_store_url(url: str) -> str:
    """A postgresql:// URL with a database name, or ValidationError that shows it redacted."""
    if not is_postgres(url):
        raise ValidationError(
            f"TUNEDECK_STORE_URL must be empty (the embedded store) or postgresql://user@host:port/database, got {redacted(url)!r}"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ValidationError(f"TUNEDECK_STORE_URL is malformed: {redacted(url)!r}") from None
    if not parts.hostname or not parts.path.strip("/"):
        raise ValidationError(f"TUNEDECK_STORE_URL needs a host and a database name: {redacted(url)!r}")
    check_password_file()
    return url


def check_password_file() -> None:
    """libpq ignores a password file that others can read, and the login then fails obscurely: say so plainly."""
    named = os.environ.get("PGPASSFILE")
    path = Path(named) if named else Path.home() / ".pgpass"
    if not path.exists():
        if named:
            raise ValidationError(f"PGPASSFILE names {path}, which does not exist")
        return
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValidationError(f"the password file {path} can be read by others; make it the owner's only: chmod 600 {path}")


def safe_message(error: BaseException) -> str:
    """An error's first line with any password in it redacted (drivers may echo the connection string)."""
    text = redacted(str(error).strip())
    return text.splitlines()[0] if text else type(error).__name__


def store_location(settings) -> str:
    """Where the store is, safe to show: the redacted PostgreSQL URL in team mode, else the data folder."""
    url = settings.store_url.get_secret_value()
    return redacted(url) if url else str(settings.data_dir)
