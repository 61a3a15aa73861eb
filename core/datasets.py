"""Read a dataset reference (a file path) with Polars, failing with messages a person can act on."""

import json
import os
from pathlib import Path

import polars as pl
from pydantic import BaseModel, ConfigDict

from core.errors import DatasetError, quoted
from core.presenters import fold

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
_READERS = {"csv": pl.read_csv, "jsonl": pl.read_ndjson, "parquet": pl.read_parquet}
_EXPECTED = {"csv": "UTF-8 text with a header row", "jsonl": "one JSON object per line", "parquet": "a Parquet file"}


class DatasetPreview(BaseModel):
    """What the UI shows before a run starts: where, what shape, and the first rows."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    path: Path
    format: str
    n_rows: int
    columns: dict[str, str]
    head: pl.DataFrame
    label_values: int | None = None  # distinct values of a 'label' column, over the whole file


def dataset_format(ref: str | Path) -> str:
    """The format a file extension stands for, or a DatasetError listing the ones we read."""
    path = Path(ref)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(FORMATS)
        raise DatasetError(f"{path} has an unsupported extension {path.suffix or '(none)'!r}; use one of {known}")
    return fmt


def read_dataset(ref: str | Path) -> pl.DataFrame:
    """The whole file as a frame; any problem becomes a DatasetError naming the file."""
    path = _existing_file(ref)
    fmt = dataset_format(path)
    try:
        if fmt != "parquet" and (encoding := _not_utf8(path)):
            raise DatasetError(
                f"cannot read {path} as {fmt}: it is {encoding}, not UTF-8 text; save it again as UTF-8 (in Excel: "
                "\"CSV UTF-8\")"
            )
        return _READERS[fmt](path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        reason = (fmt == "jsonl" and _first_bad_line(path)) or str(exc).strip().splitlines()[0]
        raise DatasetError(f"cannot read {path} as {fmt} ({reason}); a .{fmt} dataset should be {_EXPECTED[fmt]}") from exc


def _first_bad_line(path: Path) -> str | None:
    """Which line of a JSON-lines file is not a JSON object (Polars says only "ExpectedObjectContent at character 1")."""
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                if isinstance(json.loads(line), dict):
                    continue
                return f"line {number:,} is JSON but not an object: {line.strip()[:60]!r}"
            except ValueError:
                return f"line {number:,} is not JSON: {line.strip()[:60]!r}"
    return None


_WIDE_BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16"}


def _not_utf8(path: Path) -> str | None:
    """What a text file is instead of UTF-8, from its first bytes: UTF-16 or UTF-32 (Excel's "Unicode Text",
    PowerShell's Out-File) read as UTF-8 gave columns of NUL characters, which the preview could not draw."""
    with path.open("rb") as file:
        start = file.read(4096)
    for bom, name in _WIDE_BOMS.items():
        if start.startswith(bom):
            return f"{name} text"
    return "binary data (it holds NUL bytes)" if b"\x00" in start else None


def preview(ref: str | Path, rows: int = 5) -> DatasetPreview:
    df = read_dataset(ref)
    return DatasetPreview(
        path=Path(ref),
        format=dataset_format(ref),
        n_rows=df.height,
        columns={name: str(dtype) for name, dtype in df.schema.items()},
        head=df.head(rows),
        label_values=df["label"].drop_nulls().n_unique() if "label" in df.columns else None,
    )


def confine(ref: str | Path, roots: list[Path]) -> Path:
    """The dataset path, resolved, if it lies inside one of the allowed folders; a DatasetError otherwise."""
    try:
        path = Path(ref).expanduser().resolve()
    except (OSError, ValueError) as error:
        raise _no_file_name(ref, error) from None
    if any(path.is_relative_to(root.resolve()) for root in roots):
        return path
    allowed = ", ".join(str(root) for root in roots)
    raise DatasetError(
        f"dataset {ref} is outside the folders datasets may come from ({allowed}); "
        "an administrator can add its folder to TUNEDECK_DATASET_ROOTS"
    )


def training_warnings(shown: DatasetPreview) -> list[str]:
    """What the shipped trainers would refuse in this file, said before an experiment is made on it. Warnings, not
    refusals: a registered command's script may read any columns."""
    columns, warnings = set(shown.columns), []
    if shown.n_rows < 2:
        rows = "no rows" if shown.n_rows == 0 else "1 row"
        warnings.append(f"it has {rows}; the builtin and peft trainers need at least 2, to hold some out for eval")
    if "text" not in columns and not {"prompt", "completion"} <= columns:
        warnings.append("the builtin and peft trainers read a 'text' column (peft also 'prompt' and 'completion')")
    elif "label" not in columns:
        warnings.append("the builtin trainer (and peft's classification) needs a 'label' column too")
    if shown.label_values == 1 and shown.n_rows >= 2:  # a classifier of one class: every run "completes", its accuracy means nothing
        warnings.append("its 'label' column holds one value only: a classifier needs at least two to learn anything")
    return warnings


def inspect_dataset(ref: str | Path, roots: list[Path], rows: int = 5) -> DatasetPreview:
    """What the create-experiment form checks: allowed folder, exists, readable, known format; with a preview."""
    confine(ref, roots)
    return preview(ref, rows)


def stored_reference(shown: DatasetPreview, team_mode: bool) -> str:
    """What an experiment keeps of a file the form previewed: its absolute path, so a worker started in another folder
    finds it too; in team mode the path as typed, since the workers are other machines, where a relative path reads
    their own checkout."""
    return str(shown.path) if team_mode else os.path.abspath(shown.path.expanduser())


def gone(ref: str | Path) -> bool:
    """Whether an experiment's dataset is known to be missing here: only an absolute path can be judged (a relative
    one is read from each worker's own folder)."""
    path = Path(ref)
    return path.is_absolute() and not path.exists()


def require_columns(df: pl.DataFrame, ref: str | Path, columns: list[str]) -> None:
    missing = [name for name in columns if name not in df.columns]
    if missing:
        found = ", ".join(map(repr, df.columns)) or "none"
        wanted = ", ".join(map(repr, missing))
        raise DatasetError(f"{ref} is missing the {'column' if len(missing) == 1 else 'columns'} {wanted}; found columns: {found}")


def _no_file_name(ref: str | Path, error: OSError | ValueError) -> DatasetError:
    """A pasted page of text: a name too long for the file system, a NUL character."""
    why = "it has a NUL character" if isinstance(error, ValueError) else (error.strerror or str(error)).lower()
    return DatasetError(f"dataset file {quoted(fold(str(ref), 81))} cannot be a file here: {why}")


def _existing_file(ref: str | Path) -> Path:
    path = Path(ref)
    try:
        exists = path.exists()
    except OSError as error:
        raise _no_file_name(path, error) from None
    if not exists:
        raise DatasetError(f"dataset file {path} does not exist; check the path")
    if not path.is_file():
        raise DatasetError(f"{path} is a directory, not a dataset file; point at a {', '.join(FORMATS)} file")
    if path.stat().st_size == 0:
        raise DatasetError(f"dataset file {path} is empty (0 bytes)")
    return path
