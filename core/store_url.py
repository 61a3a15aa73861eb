"""The store's URL in team mode (TUNEDECK_STORE_URL=postgresql://...): what it may look like, and how it is shown.

A password may come in the URL, from PGPASSWORD, or from a libpq password file (PGPASSFILE, ~/.pgpass) that only
its owner can read. Whatever the source, a URL is only ever shown through `redacted()`.
"""

import os
import re
import stat
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from core.errors import ValidationError

SCHEMES = ("postgresql", "postgres")
_PASSWORD_PARAM = re.compile(r"(?i)([?&]\w*password=)([^&]*)")  # password=, sslpassword=: what redacts is what scrubs
MIN_SCRUBBED = 3  # a password this short is hidden from URLs, but not searched for inside other text
_UNSAFE_IN_PASSWORD = re.compile(r"[\s#/?@\[\]]|%(?![0-9A-Fa-f]{2})")  # a URL's userinfo holds these only percent-encoded
_UNSAFE_IN_QUERY = re.compile(r"[\s#]|%(?![0-9A-Fa-f]{2})")  # a query's value may hold / ? @ as they are


# Every connection's defaults; the URL's own settings win. A server that does not answer a new connection in 10 s is
# out of reach. One gone without a word (a cable pulled, a frozen VM, a NAT that forgot the connection) is noticed in
# about a minute, not after the system's defaults (2 hours idle, about 15 minutes with a request unanswered):
# keepalive probes from 30 s of silence, and data the server has not acknowledged for 60 s ends the connection.
CONNECTION_DEFAULTS = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "tcp_user_timeout": "60000",
}


def connection_options(url: str) -> dict[str, str]:
    """What every connection to the URL's server adds to it: the defaults the URL does not set itself."""
    given = {name.lower() for name in parse_qs(urlsplit(url).query, keep_blank_values=True)}
    return {name: value for name, value in CONNECTION_DEFAULTS.items() if name not in given}


def is_postgres(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SCHEMES and "://" in url


def redacted(url: str) -> str:
    """The URL with any password replaced by ***: safe for logs, messages and pages, however malformed the URL.

    The password is everything between the user's colon and the last @ before the host, so a space, #, / or @ typed
    into it unencoded (which a URL parser reads as the end of the password) is hidden too."""
    if not url:
        return url
    url = _PASSWORD_PARAM.sub(r"\1***", url)
    scheme, found, rest = url.partition("://")
    user, password, at = _userinfo(rest)
    if password is None:
        return url
    return f"{scheme}{found}{user}:***{rest[at:]}"


def _passwords(url: str) -> list[str]:
    """The passwords a URL carries as typed: in its user part, and as a password= parameter."""
    _, password, _ = _userinfo(url.partition("://")[2])
    return [found for found in (password, *_query_passwords(url)) if found]


def _query_passwords(url: str) -> list[str]:
    return [match.group(2) for match in _PASSWORD_PARAM.finditer(url)]


def _userinfo(rest: str) -> tuple[str, str | None, int]:
    """(user, password or None, index of the @ ending them) in what follows '://': the last @ before the query; when
    there is none, the last @ of all, which ends a password holding a ? (unless it is an @ in a query's value,
    `postgresql://host/db?user=admin@corp`, after a path, which is no password's end)."""
    authority, _, after = rest.partition("?")
    at = authority.rfind("@")
    in_a_query_value = "/" in authority and "=" in after.partition("@")[0]  # ?user=admin@corp, after a path
    if at < 0 and not in_a_query_value:
        at = rest.rfind("@")
    user, colon, password = rest[:at].partition(":") if at > 0 else ("", "", "")
    return user, (password if colon else None), at


def checked_store_url(url: str, name: str = "TUNEDECK_STORE_URL") -> str:
    """A postgresql:// URL with a database name, or ValidationError that shows it redacted (`name`: where it was set)."""
    if not is_postgres(url):
        raise ValidationError(f"{name} must be empty (the embedded store) or postgresql://user@host:port/database, got {redacted(url)!r}")
    _, password, _ = _userinfo(url.partition("://")[2])
    if (password and _UNSAFE_IN_PASSWORD.search(password)) or any(_UNSAFE_IN_QUERY.search(v) for v in _query_passwords(url)):
        raise ValidationError(
            f"the password in {name} holds a character a URL cannot carry as typed (a space, # / ? @ [ ], or a % not "
            "followed by two hex digits): percent-encode it (a space is %20, # is %23, / is %2F, @ is %40, % is %25), "
            "or leave the password out of the URL and put it in ~/.pgpass or PGPASSWORD"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as error:  # Python's own text is not repeated: it can quote part of the URL
        why = "its port must be a whole number up to 65535" if "port" in str(error).lower() else "check the [ ] around an IPv6 address"
        raise ValidationError(f"{name} is malformed ({why}): {redacted(url)!r}") from None
    if not (parts.hostname or "host" in parse_qs(parts.query)) or not parts.path.strip("/"):  # host=/run/...: a socket
        raise ValidationError(f"{name} needs a host and a database name: {redacted(url)!r}")
    login_password = password or any(key.lower() == "password" for key in parse_qs(parts.query))
    if not login_password and not os.environ.get("PGPASSWORD"):
        check_password_file()  # libpq reads it only for a password given nowhere else
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
    """An error's first line with any password in it redacted: drivers may echo the connection string, or a part
    of it they could not parse, so this process's own store password is hidden wherever it appears."""
    text = scrubbed(redacted(str(error).strip()))
    return text.splitlines()[0] if text else type(error).__name__


def scrubbed(text: str) -> str:
    """Text with this process's own passwords hidden: for our messages, which show URLs redacted already (a URL
    parser run over a whole sentence took the words after its first '://' for a password)."""
    for secret in _own_passwords():
        text = text.replace(secret, "***")
    return text


def _own_passwords() -> list[str]:
    """The passwords this process was given (TUNEDECK_STORE_URL, TUNEDECK_QUEUE_URL, PGPASSWORD), as typed and decoded; the shortest
    first-letter-sized ones left out, so that a message keeps its words."""
    urls = (os.environ.get(name, "") for name in ("TUNEDECK_STORE_URL", "TUNEDECK_QUEUE_URL"))
    found = [password for url in urls for password in _passwords(url)] + [os.environ.get("PGPASSWORD", "")]
    secrets = {text for password in found for text in (password, unquote(password))}
    return sorted((secret for secret in secrets if len(secret) >= MIN_SCRUBBED), key=len, reverse=True)


def store_location(settings) -> str:
    """Where the store is, safe to show: the redacted PostgreSQL URL in team mode, else the data folder."""
    url = settings.store_url.get_secret_value()
    return redacted(url) if url else str(settings.data_dir)
