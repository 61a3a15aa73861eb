"""The three settings a process needs to reach the embedded store, read without Pydantic when they are plain.

Importing Pydantic and pydantic-settings costs a fresh process ~60 ms, a fifth of a `python -c` that lists runs (the
cold process of BENCHMARKS.md). When the environment holds what most do (no store URL, unset or plain numbers), these
are read here directly; anything else (team mode, a value such as `1e3` or `-1`) is left to `core.settings`, which
reads it or says what is wrong. The defaults live here, and `core.settings` uses them.
"""

import os
import re
from pathlib import Path
from typing import NamedTuple

STORE_FILE = "tunedeck.duckdb"
DATA_DIR = Path("data")
LOCK_TIMEOUT = 60.0
STORE_SERVER_IDLE_EXIT = 60.0
_PLAIN_NUMBER = re.compile(r"[0-9]+(\.[0-9]*)?")


class ClientSettings(NamedTuple):
    store_path: Path
    lock_timeout: float
    store_server_idle_exit: float


def plain_client_settings(data_dir: Path | str | None = None) -> ClientSettings | None:
    """The store's file and the client's timeouts as `core.settings` reads them, or None when that must decide."""
    if _variable("STORE_URL") is not None or any(
        name.upper().startswith("TUNEDECK_") and not name.isupper() for name in os.environ
    ):  # pydantic-settings reads names in any case: one written so is left to it
        return None
    timeout = _number("LOCK_TIMEOUT", LOCK_TIMEOUT)
    idle_exit = _number("STORE_SERVER_IDLE_EXIT", STORE_SERVER_IDLE_EXIT)
    if timeout is None or timeout <= 0 or idle_exit is None:
        return None
    folder = Path(data_dir) if data_dir is not None else Path(_variable("DATA_DIR") or DATA_DIR)
    return ClientSettings(folder / STORE_FILE, timeout, idle_exit)


def _variable(name: str) -> str | None:
    """An empty variable counts as unset, as in core.settings."""
    return os.environ.get(f"TUNEDECK_{name}") or None


def _number(name: str, default: float) -> float | None:
    text = _variable(name)
    if text is None:
        return default
    return float(text) if _PLAIN_NUMBER.fullmatch(text) else None
