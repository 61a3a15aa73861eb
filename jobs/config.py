"""The Huey instance: a SQLite queue in the data directory; in team mode PostgreSQL (the store's database unless
TUNEDECK_QUEUE_URL names another), or Redis when TUNEDECK_QUEUE_URL says so."""

import sqlite3

from huey import Huey, PostgresHuey, RedisHuey, SqliteHuey
from huey.storage import PostgresStorage

from core.errors import StoreError
from core.settings import Settings, get_settings
from core.store_url import connection_options, is_postgres
from jobs.queue_tables import QUEUE_NAME, make_queue_tables


def make_huey(settings: Settings) -> Huey:
    url = settings.effective_queue_url
    if url.startswith(("redis://", "rediss://")):
        return RedisHuey(QUEUE_NAME, url=url)
    if is_postgres(url):  # tables huey_task, huey_schedule, huey_kv, huey_counter beside the store's
        # reached on first use, not on import
        return PostgresHuey(QUEUE_NAME, dsn=url, create_tables=False, **connection_options(url))
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(QUEUE_NAME, filename=str(settings.queue_path))
    except (OSError, sqlite3.Error) as error:
        raise StoreError(
            f"cannot keep the job queue in {settings.data_dir} ({error}); TUNEDECK_DATA_DIR must name a folder you may write"
        ) from None


huey = make_huey(get_settings())

_queue_ready = False


def ready_queue() -> Huey:
    """The queue, with its tables made on first use: importing this module never reaches a database."""
    global _queue_ready
    if not _queue_ready and isinstance(huey.storage, PostgresStorage):
        make_queue_tables(huey.storage)
    _queue_ready = True
    return huey
