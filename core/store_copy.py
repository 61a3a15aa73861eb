"""Move a whole store between the embedded DuckDB file and PostgreSQL, either way: `tunedeck store copy`.

Everything goes, table by table with IDs and times as they are (deleted experiments too), into a destination that
is empty or holds an earlier copy of the same source (then it is brought up to date: running again is safe).
Afterwards each table's row count and checksum are compared on both sides. The stores must be quiet meanwhile:
the embedded file cannot be open in a running app or worker.
"""

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from core import overviews
from core.duckdb_store import DuckDBStore
from core.entities import utcnow
from core.errors import ConflictError, StoreError, TuneDeckError, ValidationError
from core.importers.mlflow import is_sqlite_file
from core.pg_connection import PgConnection, to_frame
from core.sql import frame as query_frame
from core.sql import identifier
from core.sql_store import SqlStore
from core.store_url import checked_store_url, is_postgres, redacted

# Each ID sequence and the table whose IDs it hands out: the destination's sequence continues after the copied IDs.
SEQUENCES = {"experiment_ids": "experiments", "run_ids": "runs", "adapter_ids": "adapters"}
SKIPPED = {"schema_migrations", "copy_marks"}  # the copy's own records of each store, not the store's contents
# Written in place, and a row may be removed: the destination's are compared with what the last copy left there.
ANNOTATIONS = {"tags": "tag(s)", "notes": "note(s)", "adapter_aliases": "alias(es)"}
ANNOTATION_READS = {  # columns in one order on both engines, so a store's checksum compares with another's
    "tags": "SELECT target, target_id, key, value FROM tags",
    "notes": "SELECT target, target_id, body, updated_at FROM notes",
    "adapter_aliases": "SELECT name, alias, adapter_id, updated_at FROM adapter_aliases",
}
DERIVED = {*overviews.TABLES, "sealed_curves"}  # rebuilt from the points (core.overviews, core.pg_curves)
QUEUE_TABLES = "huey_"  # a team's queue shares its database: jobs are not part of the store
CHUNK = 50_000  # rows read, written and checked at a time: memory stays bounded whatever the store's size


@dataclass
class TableCopy:
    table: str
    rows: int
    checksum: str


@dataclass
class CopyReport:
    source: str
    destination: str
    tables: list[TableCopy] = field(default_factory=list)

    def lines(self) -> list[str]:
        width = max((len(t.table) for t in self.tables), default=5)
        return [f"copied {self.source} -> {self.destination}; verified by row counts and checksums:"] + [
            f"  {t.table:<{width}}  {t.rows:>10,} rows  {t.checksum[:16]}" for t in self.tables
        ]


class Checksum:
    """A table's rows as a count and a 128-bit sum of row hashes: the same whatever order and chunks the rows come
    in, so both engines' tables are compared a chunk at a time, without sorting either."""

    SEEDS = (0x7475_6E65, 0x6465_636B)

    def __init__(self) -> None:
        self.rows = 0
        self.sums = [0, 0]
        self.columns: list[str] | None = None

    def add(self, chunk: pl.DataFrame) -> None:
        if chunk.is_empty():
            return
        self.columns = self.columns or chunk.columns
        cells = [pl.col(name).cast(pl.String).fill_null("\u2400") for name in chunk.columns]
        text = _normalized(chunk).select(pl.concat_str(cells, separator="\u241f").alias("row")).to_series()
        for index, seed in enumerate(self.SEEDS):
            hashes = text.hash(seed=seed).to_numpy()
            self.sums[index] = (self.sums[index] + int(hashes.sum(dtype=np.uint64))) % 2**64
        self.rows += chunk.height

    def hexdigest(self) -> str:
        return "".join(f"{part:016x}" for part in self.sums)


def open_for_copy(where: str) -> SqlStore:
    """A postgresql:// URL, a data folder or a .duckdb file, opened (and migrated) for a whole-table copy."""
    if is_postgres(where):
        from core.postgres_store import PostgresStore

        return PostgresStore(where, Path("."))
    path = _store_file(where)
    if is_sqlite_file(path):  # DuckDB would try to download its SQLite reader to open it
        raise StoreError(f"{path} is an SQLite database, not a TuneDeck store: name a data folder, a .duckdb file or a postgresql:// URL")
    store = DuckDBStore(path, upkeep=False)  # builds no curve overviews into a store being copied
    _ = store.db  # opened now: a file held by a running app says so here, before anything is copied
    return store


def _store_file(where: str) -> Path:
    """A data folder's store file, or the .duckdb file named."""
    path = Path(where)
    return path / "tunedeck.duckdb" if path.is_dir() or not path.suffix else path


def describe(where: str) -> str:
    return redacted(where) if is_postgres(where) else str(_store_file(where).resolve())


def copy_store(
    source: str,
    destination: str,
    start: Callable[[int], Callable[[int], None]] = lambda total: lambda rows: None,
    chunk_rows: int = CHUNK,
) -> CopyReport:
    """Copy every table of source into destination, verify, and report. `start(total rows)` returns what to call with
    each batch of rows copied (a progress bar's update). ConflictError if the destination holds experiments that are
    not the source's. Rows stream through in chunks of `chunk_rows`, both ways and when checking."""
    for url, name in ((source, "the copy's source"), (destination, "the copy's destination")):
        if not url.strip():  # Path("") is the working folder: an empty --to wrote a store there
            raise ValidationError(f"{name} is empty: name a data folder, a .duckdb file or a postgresql:// URL")
        if is_postgres(url):
            checked_store_url(url, name)  # before anything opens it: its mistakes named as the copy's, not a setting's
        elif "://" in url or url.lower().startswith(("postgresql:", "postgres:")):  # postgresq://, postgresql:/ ...
            shown = redacted(url) if "://" in url else url.split(":", 1)[0] + ":***"  # postgresql:/user:pass@... too
            raise ValidationError(
                f"{name} {shown} is neither a postgresql:// URL nor a folder: check the spelling of postgresql://"
            )  # taken as a path, it made folders named after the URL, password and all
    if describe(source) == describe(destination):
        raise ConflictError("the source and the destination are the same store")
    if not is_postgres(source) and not (Path(source).is_file() or (Path(source) / "tunedeck.duckdb").is_file()):
        raise StoreError(f"there is no TuneDeck store at {source}: name a data folder, a .duckdb file or a postgresql:// URL")
    with ExitStack() as opened:  # whichever opened is closed, also when the other one cannot be
        src = open_for_copy(source)
        opened.callback(src.close)
        dst = open_for_copy(destination)
        opened.callback(dst.close)
        return _copy(src, dst, source, destination, start, chunk_rows)


def _copy(
    src: SqlStore, dst: SqlStore, source: str, destination: str, start: Callable, chunk_rows: int
) -> CopyReport:
    """The copy and its check, between two stores opened for it."""
    with _reads(src) as read:
        tables = [t for t in _tables(read) if t not in SKIPPED | DERIVED and not t.startswith(QUEUE_TABLES)]
        missing = sorted(set(tables) - set(_write_tables(dst)))
        stale = sorted(DERIVED & set(_write_tables(dst)))  # an earlier copy's overviews may not fit the new points
        if missing:
            raise StoreError(f"the destination has no table {', '.join(missing)}: is it an older TuneDeck version?")
        _refuse_foreign(_normalized(_read_table(read, "experiments")), dst)
        annotated = _annotation_sums(read)
        _refuse_newer_work(read, dst, annotated, tables)
        progress = start(sum(_count(read, table) for table in tables))
        sent = {table: Checksum() for table in tables}
        marks: dict[str, str] = {}

        def replace_all(write) -> None:
            _unhurried(write)
            for table in stale:
                write.execute(f"DELETE FROM {identifier(table)}")
            for table in tables:
                write.execute(f"DELETE FROM {identifier(table)}")  # table names come from the store's own catalog
                next_id = 1
                for chunk in _chunks(read, _in_name_order(read, table), chunk_rows):
                    _insert(write, table, chunk)
                    sent[table].add(chunk)
                    next_id = max(next_id, (chunk["id"].max() or 0) + 1) if "id" in chunk.columns else next_id
                    progress(chunk.height)
                for sequence in (name for name, owner in SEQUENCES.items() if owner == table):
                    _continue_sequence(write, sequence, next_id)
            marks.update(annotated | {_MARK + table: f"{sum_.rows}:{sum_.hexdigest()}" for table, sum_ in sent.items()})
            _write_marks(write, marks)  # with the rows they describe: a copy that stops leaves old rows and marks

        dst._write(replace_all)
    report = CopyReport(describe(source), describe(destination))
    with _reads(dst) as con:
        for table, expected in sent.items():
            names = ", ".join(identifier(name) for name in expected.columns) if expected.columns else "*"
            found = Checksum()
            for chunk in _chunks(con, f"SELECT {names} FROM {identifier(table)}", chunk_rows):
                found.add(chunk)
            if (found.rows, found.hexdigest()) != (expected.rows, expected.hexdigest()):
                raise StoreError(
                    f"table {table} differs after the copy ({expected.rows} rows in, {found.rows} found); run the copy again"
                )
            report.tables.append(TableCopy(table, expected.rows, expected.hexdigest()))
    try:  # both now hold these: a copy back compares with them too
        src._write(lambda con: _write_marks(con, marks))
    except TuneDeckError:  # a source this role may only read: nothing is lost, a copy back may ask more of it
        pass
    if is_postgres(destination):  # the copied runs' curves sealed, as if they had ended there
        dst.build_overviews()  # (an embedded destination's owner builds its curve overviews when it idles)
    return report


@contextmanager
def _reads(store: SqlStore) -> Iterator:
    with store.reading() as con:
        _unhurried(con)
        yield con


def _unhurried(con) -> None:
    """A copy's transaction waits on the other store between its statements: PostgreSQL must not end it as stalled
    (core.postgres_store.STALLED_TRANSACTION)."""
    if isinstance(con, PgConnection):
        con.raw.execute("SET LOCAL idle_in_transaction_session_timeout = 0")


def _tables(con) -> list[str]:
    if isinstance(con, PgConnection):
        found = con.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1").fetchall()
    else:
        found = con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary ORDER BY 1").fetchall()
    return [row[0] for row in found]


def _write_tables(store: SqlStore) -> list[str]:
    with _reads(store) as con:
        return _tables(con)


def _read_table(con, table: str) -> pl.DataFrame:
    return query_frame(con, f"SELECT * FROM {identifier(table)}")


def _count(con, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {identifier(table)}").fetchall()[0][0]


def _chunks(con, sql: str, size: int) -> Iterator[pl.DataFrame]:
    """A query's rows, `size` at a time: a server-side cursor on PostgreSQL, Arrow record batches on DuckDB."""
    if isinstance(con, PgConnection):
        with con.raw.cursor(name="tunedeck_copy") as cursor:
            cursor.itersize = size
            cursor.execute(sql)
            while found := cursor.fetchmany(size):
                yield to_frame(cursor, found)
        return
    for batch in con.sql(sql).to_arrow_reader(size):
        yield pl.from_arrow(batch)


def _normalized(frame: pl.DataFrame) -> pl.DataFrame:
    """Both engines' types as one: whole numbers as Int64, timestamps in microseconds."""
    casts = []
    for name, dtype in frame.schema.items():
        if dtype.is_integer():
            casts.append(pl.col(name).cast(pl.Int64))
        elif isinstance(dtype, pl.Datetime):
            casts.append(pl.col(name).cast(pl.Datetime("us")))
        elif dtype == pl.Null:
            casts.append(pl.col(name).cast(pl.String))
    return frame.with_columns(casts) if casts else frame


def _refuse_foreign(experiments: pl.DataFrame, dst: SqlStore) -> None:
    """A destination in use for other work is never overwritten: only an empty one or an earlier copy of this source."""
    with _reads(dst) as con:
        theirs = _normalized(_read_table(con, "experiments"))
    if theirs.is_empty():
        return
    ours = {(row["id"], row["name"], row["created_at"]) for row in experiments.select("id", "name", "created_at").to_dicts()}
    foreign = [
        row
        for row in theirs.select("id", "name", "created_at").to_dicts()
        if (row["id"], row["name"], row["created_at"]) not in ours
    ]
    if foreign:
        names = ", ".join(repr(row["name"]) for row in foreign[:3])
        raise ConflictError(
            f"the destination already holds {len(foreign)} experiment(s) that are not the source's ({names}); "
            "copy into an empty store, or one this command filled from the same source"
        )


_MARK = "table "  # copy_marks' name for a whole table's mark, beside the annotation tables' own
_WORDS = {"metrics": "points", "metric_summaries": "points", "run_logs": "run logs", "best_metrics": "best metrics"}

# What a destination that was copied from this source may not have gained since: its own runs and adapters, and
# points logged into a run there. Copying over it would delete that work.
_WORK = {
    "run": "SELECT id, created_at FROM runs",
    "adapter": "SELECT id, created_at FROM adapters",
    "points": "SELECT run_id, sum(count) AS points FROM metric_summaries GROUP BY run_id",
    "tags": "SELECT target, target_id, key FROM tags",
    "notes": "SELECT target, target_id, updated_at FROM notes",
    "adapter_aliases": "SELECT name, alias, updated_at FROM adapter_aliases",
}


def _refuse_newer_work(read, dst: SqlStore, annotated: dict[str, str], tables: list[str]) -> None:
    """An earlier copy of this source is brought up to date only while nothing was done in it: a run started, an adapter
    registered, a point logged or rewritten, a run's status, log or samples, or a tag, note or alias added, changed or
    removed there since would be lost, so the copy is refused and says what it found."""
    with _reads(dst) as con:
        theirs = {what: _normalized(query_frame(con, sql)) for what, sql in _WORK.items()}
    ours = {what: _normalized(query_frame(read, sql)) for what, sql in _WORK.items()}
    found = []
    for what in ("run", "adapter"):
        new = theirs[what].join(ours[what], on=["id", "created_at"], how="anti")
        if new.height:
            found.append(f"{new.height} {what}(s) of its own (ID {', '.join(map(str, new['id'].head(3).to_list()))})")
    points = theirs["points"].join(ours["points"], on="run_id", how="left", suffix="_source")
    more = points.filter(pl.col("points") > pl.col("points_source").fill_null(0))
    if more.height:
        found.append(f"more points logged in {more.height} run(s) (ID {', '.join(map(str, more['run_id'].head(3).to_list()))})")
    found += _annotated_since(dst, annotated, theirs, ours)
    found = found or _changed_since(read, dst, tables)
    if found:
        raise ConflictError(
            f"the destination holds work the source does not: {'; '.join(found)}. Copying would delete it: copy into an "
            "empty store, or copy that work back first"
        )


def _changed_since(read, dst: SqlStore, tables: list[str]) -> list[str]:
    """The tables the destination changed since the last copy marked them (each copied table's count and checksum),
    where they now differ from the source's too: what the specific checks above do not name, such as a point's value
    rewritten at its step, a run failed there, a log line or a sample added."""
    with _reads(dst) as con:
        marks = _marks(con)
        now = {table: _table_sum(con, table) for table in tables if table not in ANNOTATIONS and _MARK + table in marks}
    changed = [table for table, found in now.items() if found != marks[_MARK + table] and found != _table_sum(read, table)]
    return list(dict.fromkeys(f"{_WORDS.get(table, table)} changed since the last copy" for table in changed))


def _table_sum(con, table: str) -> str:
    """A table's rows as 'count:checksum', its columns in name order (as the copy reads and marks them)."""
    checksum = Checksum()
    for chunk in _chunks(con, _in_name_order(con, table), CHUNK):
        checksum.add(chunk)
    return f"{checksum.rows}:{checksum.hexdigest()}"


def _in_name_order(con, table: str) -> str:
    """SELECT of a table's columns in name order: the same checksum on both engines, whatever order each made them in."""
    names = ", ".join(identifier(name) for name in sorted(query_frame(con, f"SELECT * FROM {identifier(table)} LIMIT 0").columns))
    return f"SELECT {names} FROM {identifier(table)}"


def _annotated_since(dst: SqlStore, annotated: dict[str, str], theirs: dict, ours: dict) -> list[str]:
    """Tags, notes and aliases the destination changed since the last copy between the two: its tables against the
    checksums that copy left (copy_marks). Nothing is lost where they already equal the source's. A store no copy
    marked: what it holds that the source lacks."""
    with _reads(dst) as con:
        marks = _marks(con)
        now = _annotation_sums(con)
    found = []
    for table, counted in ANNOTATIONS.items():
        if now[table] == annotated[table]:
            continue
        if table in marks:
            if now[table] != marks[table]:
                found.append(f"{counted} changed since the last copy")
        elif (lost := _unmarked_work(table, theirs[table], ours[table])) is not None:
            found.append(lost)
    return found


def _unmarked_work(table: str, theirs: pl.DataFrame, ours: pl.DataFrame) -> str | None:
    if table == "tags":
        new = theirs.join(ours, on=["target", "target_id", "key"], how="anti")
        return f"{new.height} tag(s) the source does not have ({', '.join(new['key'].head(3).to_list())})" if new.height else None
    keys = ["target", "target_id"] if table == "notes" else ["name", "alias"]
    newer = theirs.join(ours, on=keys, how="left", suffix="_source")
    newer = newer.filter(pl.col("updated_at_source").is_null() | (pl.col("updated_at") > pl.col("updated_at_source")))
    return f"{newer.height} {ANNOTATIONS[table]} set since" if newer.height else None


def _annotation_sums(con) -> dict[str, str]:
    """Each annotation table's rows as 'count:checksum', over the same columns on either engine."""
    sums = {}
    for table, query in ANNOTATION_READS.items():
        checksum = Checksum()
        for chunk in _chunks(con, query, CHUNK):
            checksum.add(chunk)
        sums[table] = f"{checksum.rows}:{checksum.hexdigest()}"
    return sums


def _marks(con) -> dict[str, str]:
    """What the last copy between this store and another left: each table's (or annotation table's) 'count:checksum'."""
    return {row["name"]: row["checksum"] for row in _read_table(con, "copy_marks").iter_rows(named=True)}


def _write_marks(con, sums: dict[str, str]) -> None:
    con.execute("DELETE FROM copy_marks")
    for table, checksum in sums.items():
        rows = int(checksum.split(":", 1)[0])
        con.execute("INSERT INTO copy_marks (name, rows, checksum, copied_at) VALUES (?, ?, ?, ?)", [table, rows, checksum, utcnow()])


def _insert(con, table: str, frame: pl.DataFrame) -> None:
    if frame.is_empty():
        return
    names = ", ".join(identifier(name) for name in frame.columns)
    if isinstance(con, PgConnection):
        with con.raw.cursor() as cursor, cursor.copy(f"COPY {identifier(table)} ({names}) FROM STDIN") as copy:
            for row in frame.iter_rows():
                copy.write_row(row)
        return
    con.register("copied_rows", frame)
    try:
        con.execute(f"INSERT INTO {identifier(table)} ({names}) SELECT {names} FROM copied_rows")
    finally:
        con.unregister("copied_rows")


def _continue_sequence(con, sequence: str, next_id: int) -> None:
    if isinstance(con, PgConnection):
        con.execute("SELECT setval(?, ?, false)", [sequence, next_id])
        return
    con.execute(f"DROP SEQUENCE {identifier(sequence)}")  # DuckDB cannot move a sequence: make it again from the next ID
    con.execute(f"CREATE SEQUENCE {identifier(sequence)} START {int(next_id)}")
