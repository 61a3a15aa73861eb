"""The files of an adapter folder, for the registry's detail view."""

from pathlib import Path

import polars as pl

from core.presenters import format_size


def adapter_files(path: str) -> pl.DataFrame:
    """Name and size of each file; empty when the folder is gone (the registry entry is kept for audit)."""
    folder = Path(path)
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    return pl.DataFrame(
        {"file": [p.relative_to(folder).as_posix() for p in files], "size": [format_size(p.stat().st_size) for p in files]},
        schema={"file": pl.String, "size": pl.String},
    )
