"""Describe an adapter folder for registration: total size and a checksum over its files."""

import hashlib
from pathlib import Path

from core.entities import AdapterSpec


def describe_adapter(folder: Path, base_model: str, name: str | None = None) -> AdapterSpec:
    digest = hashlib.sha256()
    size = 0
    for file in sorted(path for path in folder.rglob("*") if path.is_file()):
        digest.update(file.relative_to(folder).as_posix().encode())
        digest.update(file.read_bytes())
        size += file.stat().st_size
    return AdapterSpec(
        path=str(folder), base_model=base_model, size_bytes=size, checksum=f"sha256:{digest.hexdigest()}", name=name
    )
