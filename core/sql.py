"""Small helpers that run a statement and hand back its whole result."""

import duckdb
import polars as pl


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    """Run a statement to completion (DuckDB 2 refuses new work while a result is unread)."""
    return con.execute(sql, params or []).fetchall()


def first(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> tuple | None:
    found = rows(con, sql, params)
    return found[0] if found else None


def frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None) -> pl.DataFrame:
    """The result of a query as a Polars frame."""
    return con.sql(sql, params=params or []).pl()


def identifier(name: str) -> str:
    """A table or column name quoted for SQL (both engines), for names read from a store's own catalog."""
    return '"' + str(name).replace('"', '""') + '"'
