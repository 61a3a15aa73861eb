"""The PostgreSQL queue's tables (huey_task, huey_schedule, huey_kv, huey_counter), made once by a role that may.

Apart from `jobs.config.ready_queue`, which makes them on first use: `tunedeck store copy` makes them in the
database it copied into, so a team's workers can start there at once.
"""

from huey.storage import PostgresStorage

QUEUE_NAME = "tunedeck"


def make_queue_tables(storage: PostgresStorage) -> None:
    """The tables, made only when missing: a role without the CREATE right uses tables its owner made."""
    with storage.db() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [storage.table_task])
        missing = cursor.fetchone()[0] is None
    if missing:
        with storage.db(commit=True) as cursor:
            # CREATE TABLE IF NOT EXISTS is not safe from two machines at once (the second fails on pg_type's
            # unique index): they take turns, and the second finds the tables made
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('tunedeck queue schema'))")
            for statement in storage.ddl:
                cursor.execute(statement)


def queue_storage(url: str) -> PostgresStorage:
    """The queue's storage in the database at `url`, its tables not yet reached."""
    return PostgresStorage(QUEUE_NAME, dsn=url, create_tables=False)
