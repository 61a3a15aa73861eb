"""The Huey instance: a SQLite queue in the data directory; in team mode PostgreSQL (the store's database unless
TUNEDECK_QUEUE_URL names another), or Redis when TUNEDECK_QUEUE_URL says so."""

import sqlite3

from huey import Huey, PostgresHuey, RedisHuey, SqliteHuey
from huey.storage import PostgresStorage

from core.errors import StoreError
from core.settings import Settings, get_settings
from core.store_url import is_postgres


def make_huey(settings: Settings) -> Huey:
    url = settings.effective_queue_url
    if url.startswith(("redis://", "rediss://")):
        return RedisHuey("tunedeck", url=url)
    if is_postgres(url):  # tables huey_task, huey_schedule, huey_kv, huey_counter beside the store's
        return PostgresHuey("tunedeck", dsn=url, create_tables=False)  # reached on first use, not on import
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return SqliteHuey("tunedeck", filename=str(settings.queue_path))
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
        with huey.storage.db() as cursor:
            cursor.execute("SELECT to_regclass(%s)", [huey.storage.table_task])
            missing = cursor.fetchone()[0] is None
        if missing:  # only then: a role without the CREATE right uses tables its owner made
            with huey.storage.db(commit=True) as cursor:
                # CREATE TABLE IF NOT EXISTS is not safe from two machines at once (the second fails on pg_type's
                # unique index): they take turns, and the second finds the tables made
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext('tunedeck queue schema'))")
                for statement in huey.storage.ddl:
                    cursor.execute(statement)
    _queue_ready = True
    return huey
