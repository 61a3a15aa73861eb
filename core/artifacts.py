"""Adapter and checkpoint folders on disk: what they hold, how to describe an adapter for registration."""

import hashlib
import io
import shutil
import zipfile
from pathlib import Path

import polars as pl

from core.entities import Adapter, AdapterSpec
from core.errors import NotFoundError
from core.presenters import format_size


def adapter_files(path: str) -> pl.DataFrame:
    """Name and size of each file; empty when the folder is gone (the registry entry is kept for audit)."""
    folder = Path(path)
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    return pl.DataFrame(
        {"file": [p.relative_to(folder).as_posix() for p in files], "size": [format_size(p.stat().st_size) for p in files]},
        schema={"file": pl.String, "size": pl.String},
    )


def adapter_zip(adapter: Adapter) -> bytes:
    """The adapter's folder as a zip whose files sit under `<name>-v<version>/`, so unzipping never scatters them."""
    folder = Path(adapter.path)
    if not folder.is_dir():
        raise NotFoundError(f"the folder of adapter {adapter.name} v{adapter.version} ({folder}) is no longer on disk")
    top = zip_name(adapter).removesuffix(".zip")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(path for path in folder.rglob("*") if path.is_file()):
            archive.write(file, f"{top}/{file.relative_to(folder).as_posix()}")
    return buffer.getvalue()


def zip_name(adapter: Adapter) -> str:
    """A file name safe on any system: the adapter's name with anything but letters, digits, . _ - made '_'."""
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in adapter.name).strip("._") or "adapter"
    return f"{safe}-v{adapter.version}.zip"


def describe_adapter(folder: Path, base_model: str, name: str | None = None) -> AdapterSpec:
    """Total size and a sha256 over the folder's files (names and bytes), ready for complete_run()."""
    digest = hashlib.sha256()
    size = 0
    for file in sorted(path for path in Path(folder).rglob("*") if path.is_file()):
        digest.update(file.relative_to(folder).as_posix().encode())
        digest.update(file.read_bytes())
        size += file.stat().st_size
    return AdapterSpec(
        path=str(folder), base_model=base_model, size_bytes=size, checksum=f"sha256:{digest.hexdigest()}", name=name
    )


def keep_under(folder: Path, data_dir: Path, destination: Path) -> Path:
    """Adapters live only under the data directory: one saved elsewhere is copied to destination."""
    folder = Path(folder).resolve()
    if folder.is_relative_to(Path(data_dir).resolve()):
        return folder
    shutil.copytree(folder, destination, dirs_exist_ok=True)
    return destination


def checkpoints_of(checkpoints_dir: Path, run_id: int) -> Path:
    """Where a run's trainer keeps its checkpoints (`checkpoint-<step>` folders, as the HF Trainer names them)."""
    return Path(checkpoints_dir) / f"run-{run_id}"


def last_checkpoint(folder: Path) -> Path | None:
    """The checkpoint with the highest step in `folder`, if any."""
    found = [path for path in Path(folder).glob("checkpoint-*") if path.name.removeprefix("checkpoint-").isdigit()]
    return max(found, key=lambda path: int(path.name.removeprefix("checkpoint-")), default=None)
