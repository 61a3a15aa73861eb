"""TuneDeck's core: the tracking store and the rules around it, with no UI."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.settings import Settings
    from core.store import TrackingStore

# The package imports none of its modules itself, and open_store imports what it needs when called. Importing them
# here made every module a cycle through the package: sessions of the app that first ran at once (a browser reopening
# its tabs) imported them side by side on their threads, and one got another's half-made module.
_team_stores: dict[tuple, TrackingStore] = {}
_team_lock = threading.Lock()


def open_store(data_dir: Path | str | None = None, *, settings: Settings | None = None) -> TrackingStore:
    """The store in data_dir, else in TUNEDECK_DATA_DIR (default ./data), reached through its store server (started
    on first use, gone when idle). Opening holds nothing: each call is one request.

    With TUNEDECK_STORE_URL=postgresql://... the store is that database instead (team mode): PostgreSQL is the
    owner, so no store server starts; one pool of connections per process and URL is shared by every caller."""
    from core.client_settings import plain_client_settings
    from core.remote import RemoteStore

    plain = plain_client_settings(data_dir) if settings is None else None
    if plain is not None:  # no Pydantic to import: see core.client_settings
        return RemoteStore(plain.store_path, timeout=plain.lock_timeout, idle_exit=plain.store_server_idle_exit)
    from core.settings import get_settings

    settings = settings or get_settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": Path(data_dir)})
    url = settings.store_url.get_secret_value()
    if url:
        return _team_store(url, settings)
    return RemoteStore(settings.store_path, timeout=settings.lock_timeout, idle_exit=settings.store_server_idle_exit)


def _team_store(url: str, settings) -> TrackingStore:
    from core.postgres_store import PostgresStore  # psycopg is loaded only in team mode

    key = (os.getpid(), url, settings.data_dir.resolve())  # a forked child opens its own connections
    with _team_lock:
        if key not in _team_stores:
            _team_stores[key] = PostgresStore(
                url, settings.data_dir, timeout=settings.lock_timeout, dataset_roots=settings.allowed_dataset_roots
            )
        return _team_stores[key]
