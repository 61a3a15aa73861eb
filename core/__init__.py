"""TuneDeck's core: the tracking store and the rules around it, with no UI."""

from pathlib import Path

from core.duckdb_store import DuckDBStore
from core.settings import get_settings


def open_store(data_dir: Path | str | None = None) -> DuckDBStore:
    """The store in data_dir, else in TUNEDECK_DATA_DIR (default ./data), served by the store server
    (started on first use) unless TUNEDECK_STORE_SERVER=0. Opening holds no lock."""
    settings = get_settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": Path(data_dir)})
    return DuckDBStore(
        settings.store_path,
        lock_timeout=settings.lock_timeout,
        dataset_roots=settings.allowed_dataset_roots,
        server_idle_exit=settings.store_server_idle_exit if settings.store_server else None,
    )
