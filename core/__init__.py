"""TuneDeck's core: the tracking store and the rules around it, with no UI."""

from pathlib import Path

from core.remote import RemoteStore
from core.settings import get_settings
from core.store import TrackingStore


def open_store(data_dir: Path | str | None = None) -> TrackingStore:
    """The store in data_dir, else in TUNEDECK_DATA_DIR (default ./data), reached through its store server (started
    on first use, gone when idle). Opening holds nothing: each call is one request."""
    settings = get_settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": Path(data_dir)})
    return RemoteStore(settings.store_path, timeout=settings.lock_timeout, idle_exit=settings.store_server_idle_exit)
