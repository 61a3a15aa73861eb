"""Small helpers that run a statement and hand back its whole result."""

import duckdb
import polars as pl


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    """Run a statement to completion (DuckDB 2 refuses new work while a result is unread)."""
    return con.execute(sql, params or []).fetchall()


def first(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> tuple | None:
    found = rows(con, sql, params)
    return found[0] if found else None


def frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pl.DataFrame:
    """The result as a Polars frame, by way of Arrow: in DuckDB 2.0.1 `.pl()` costs ~6.5 ms for 5,000 rows where
    `.arrow()` plus `pl.from_arrow` costs ~1 ms, and an Arrow table crosses from the store server unconverted."""
    table = con.sql(sql, params=params or []).arrow().read_all()
    return pl.from_arrow(table)
