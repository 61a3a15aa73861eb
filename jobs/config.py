"""The Huey instance: a SQLite queue in the data directory; in team mode PostgreSQL (the store's database unless
TUNEDECK_QUEUE_URL names another), or Redis when TUNEDECK_QUEUE_URL says so."""

import sqlite3
from pathlib import Path

from huey import Huey, PostgresHuey, RedisHuey
from huey.storage import PostgresStorage, SqliteStorage

from core.errors import StoreError
from core.settings import Settings, get_settings
from core.store_url import connection_options, is_postgres
from jobs.queue_tables import QUEUE_NAME, make_queue_tables


class SqliteQueue(SqliteStorage):
    """Huey's SQLite storage, whose file and tables are made by its first connection, wherever that is made (a
    worker, a run queued, a task called directly), rather than on import."""

    def _create_connection(self) -> sqlite3.Connection:
        Path(self.filename).parent.mkdir(parents=True, exist_ok=True)
        connection = super()._create_connection()
        for statement in self.ddl:
            connection.execute(statement)
        return connection


def make_huey(settings: Settings) -> Huey:
    """The queue the settings name, opening nothing: its tables are made on first use (`ready_queue`)."""
    url = settings.effective_queue_url
    if url.startswith(("redis://", "rediss://")):
        return RedisHuey(QUEUE_NAME, url=url)
    if is_postgres(url):  # tables huey_task, huey_schedule, huey_kv, huey_counter beside the store's
        return PostgresHuey(QUEUE_NAME, dsn=url, create_tables=False, **connection_options(url))
    return Huey(QUEUE_NAME, storage_class=SqliteQueue, filename=str(settings.queue_path), create_tables=False)


huey = make_huey(get_settings())

_queue_ready = False


def ready_queue() -> Huey:
    """The queue, reached: its tables made where they are missing, and a data folder that cannot hold it said in a
    sentence. Importing this module reaches no database and makes no file."""
    global _queue_ready
    if not _queue_ready:
        if isinstance(huey.storage, PostgresStorage):
            make_queue_tables(huey.storage)
        elif isinstance(huey.storage, SqliteQueue):
            _reach_sqlite_queue(huey.storage, get_settings())
    _queue_ready = True
    return huey


def _reach_sqlite_queue(storage: SqliteQueue, settings: Settings) -> None:
    try:
        with storage.lock:  # as Huey's own calls take it: one connection, made once
            storage.conn  # noqa: B018 (connecting makes the file and its tables)
    except (OSError, sqlite3.Error) as error:
        raise StoreError(
            f"cannot keep the job queue in {settings.data_dir} ({error}); TUNEDECK_DATA_DIR must name a folder you may write"
        ) from None
