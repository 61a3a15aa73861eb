"""Adapter and checkpoint folders: what they hold, how to describe an adapter for registration, and where adapters
are kept for every machine (`ArtifactStore`)."""

import hashlib
import os
import shutil
import tempfile
import zipfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO

import polars as pl

from core.entities import Adapter, AdapterSpec
from core.errors import NotFoundError, StoreError, ValidationError
from core.presenters import format_size
from core.settings import Settings


def adapter_zip(adapter: Adapter, artifacts: "ArtifactStore") -> bytes:
    """The adapter as a zip whose files sit under `<name>-v<version>/`, so unzipping never scatters them."""
    try:
        with artifacts.open(adapter.path, top=zip_name(adapter).removesuffix(".zip")) as archive:
            return archive.read()
    except NotFoundError:
        raise NotFoundError(
            f"the folder of adapter {adapter.name} v{adapter.version} ({adapter.path}) is no longer on disk"
        ) from None


def zip_folder(folder: Path, target: BinaryIO, top: str = "") -> None:
    """Every file of the folder into a zip written to target, under `top/` when given."""
    prefix = f"{top}/" if top else ""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(path for path in folder.rglob("*") if path.is_file()):
            archive.write(file, prefix + file.relative_to(folder).as_posix())


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


def refuse_holding(folder: Path, inside: Path) -> None:
    """An adapter folder that holds TuneDeck's own files (the data folder, the adapters folder) would be copied into
    itself."""
    folder, inside = Path(folder).resolve(), Path(inside).resolve()
    if inside.is_relative_to(folder) and inside != folder:  # the run's own adapter folder itself is where it belongs
        raise ValidationError(
            f"cannot keep {folder} as an adapter: it holds TuneDeck's own files ({inside}); save the adapter in a "
            "folder of its own"
        )


def keep(folder: Path, destination: Path) -> Path:
    """A registered adapter keeps files of its own, in the run's folder: one saved anywhere else is copied there.
    (Kept in place once, anywhere in the data directory, a second run saving to the same folder overwrote the first
    run's registered adapter.)"""
    folder, destination = Path(folder).resolve(), Path(destination).resolve()
    if folder.is_relative_to(destination):
        return folder
    refuse_holding(folder, destination)
    try:
        shutil.copytree(folder, destination, dirs_exist_ok=True)
    except OSError:
        shutil.rmtree(destination, ignore_errors=True)  # no half-copied adapter left for a later run to be mistaken for
        raise
    return destination


def run_files_dir(data_dir: Path, run_id: int, artifact_root: Path | None = None) -> Path:
    """Where a run's logged files are kept: under the shared artifact root when there is one (team mode: every
    machine's run page lists them), else in the data folder."""
    return Path(artifact_root or data_dir) / "files" / f"run-{int(run_id)}"


def keep_file(path: Path, data_dir: Path, run_id: int, artifact_root: Path | None = None) -> Path:
    """Copy a file a script logged into the run's folder (a later file of the same name replaces it)."""
    path = Path(path)
    if path.is_dir():
        raise ValidationError(f"cannot log {path}: it is a folder; log_file keeps one file (log_adapter takes a folder)")
    if not path.is_file():
        raise ValidationError(f"cannot log {path}: no such file")
    if artifact_root is not None and (problem := FolderArtifacts(artifact_root, shared=True).problem()):
        raise StoreError(f"the file cannot be kept: {problem}")  # never made on this disk instead
    folder = run_files_dir(data_dir, run_id, artifact_root)
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(path, folder / path.name))  # this umask's mode: readable where the folder is shared


def run_files(data_dir: Path, run_id: int, artifact_root: Path | None = None) -> list[Path]:
    """The files logged with a run, by name: on the shared root, and in this data folder (kept there before the root
    was set), the shared one winning a name both hold."""
    found: dict[str, Path] = {}
    for root in filter(None, [data_dir, artifact_root]):
        folder = run_files_dir(data_dir, run_id, root)
        found |= {p.name: p for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}
    return [found[name] for name in sorted(found)]


def adapter_of(adapters_dir: Path, run_id: int) -> Path:
    """The folder a run's registered adapter is kept in, whoever saved it (a worker's trainer or a script)."""
    return Path(adapters_dir) / f"run-{int(run_id)}"


def checkpoints_of(checkpoints_dir: Path, run_id: int) -> Path:
    """Where a run's trainer keeps its checkpoints (`checkpoint-<step>` folders, as the HF Trainer names them)."""
    return Path(checkpoints_dir) / f"run-{run_id}"


def last_checkpoint(folder: Path) -> Path | None:
    """The checkpoint with the highest step in `folder`, if any."""
    found = [path for path in Path(folder).glob("checkpoint-*") if path.name.removeprefix("checkpoint-").isdigit()]
    return max(found, key=lambda path: int(path.name.removeprefix("checkpoint-")), default=None)


class ArtifactStore(ABC):
    """Where adapters are kept for every machine: a folder they all mount today, an object store tomorrow."""

    @abstractmethod
    def put(self, folder: Path, key: str) -> str:
        """Copy a local folder in under key (replacing what was there) and return where it now is."""

    @abstractmethod
    def open(self, location: str, top: str = "") -> BinaryIO:
        """The artifact as one zip archive (its files under `top/` when given), to download; NotFoundError when it is
        gone."""

    @abstractmethod
    def files(self, location: str) -> pl.DataFrame:
        """Name and size of each file; empty when the artifact is gone (its registry entry is kept for audit)."""

    @abstractmethod
    def size_and_checksum(self, location: str) -> tuple[int, str]:
        """Total bytes and a sha256 over the files' names and bytes, as registered."""

    @abstractmethod
    def problem(self) -> str | None:
        """Why this machine could not keep an artifact here now, or None: asked before a worker takes jobs."""


class FolderArtifacts(ArtifactStore):
    """Artifacts as folders under one root (TUNEDECK_ARTIFACT_ROOT, a share every machine mounts)."""

    def __init__(self, root: Path, shared: bool = False):
        self.root = Path(root)
        self.shared = shared  # a share is mounted, never made: a missing one would fill this machine's disk instead

    def problem(self) -> str | None:
        setting = "TUNEDECK_ARTIFACT_ROOT" if self.shared else "TUNEDECK_DATA_DIR"
        try:
            return self._problem(setting)
        except OSError as error:  # a folder above it this user may not look into
            return f"{setting}: {self.root} cannot be reached ({error.strerror or error})"

    def _problem(self, setting: str) -> str | None:
        if self.root.exists() and not self.root.is_dir():
            return f"{setting}: {self.root} is a file, not a folder"
        if not self.root.exists():
            if self.shared:
                return f"TUNEDECK_ARTIFACT_ROOT: {self.root} does not exist; mount the shared folder there (or create it)"
            return _unwritable(_nearest_existing(self.root), setting)
        return _unwritable(self.root, setting)

    def put(self, folder: Path, key: str) -> str:
        destination = self.root / key
        if Path(folder).resolve() != destination.resolve():
            destination.parent.mkdir(parents=True, exist_ok=True)
            partial = destination.with_name(f".{destination.name}.partial")  # readers never see half a copy
            shutil.rmtree(partial, ignore_errors=True)
            _copy_with_fresh_modes(Path(folder), partial)
            shutil.rmtree(destination, ignore_errors=True)
            partial.rename(destination)
        return str(destination)

    def open(self, location: str, top: str = "") -> BinaryIO:
        folder = Path(location)
        if not folder.is_dir():
            raise NotFoundError(f"the adapter's folder {folder} is no longer there")
        archive = tempfile.TemporaryFile()
        zip_folder(folder, archive, top)
        archive.seek(0)
        return archive

    def files(self, location: str) -> pl.DataFrame:
        folder = Path(location)
        found = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        return pl.DataFrame(
            {"file": [p.relative_to(folder).as_posix() for p in found], "size": [format_size(p.stat().st_size) for p in found]},
            schema={"file": pl.String, "size": pl.String},
        )

    def size_and_checksum(self, location: str) -> tuple[int, str]:
        spec = describe_adapter(Path(location), base_model="-")
        return spec.size_bytes, spec.checksum


def _copy_with_fresh_modes(folder: Path, destination: Path) -> None:
    """Files and folders made anew, with this process's umask: not the source's modes, which may keep the app's user
    on another machine out (safetensors writes its files 0600)."""
    destination.mkdir(parents=True)
    for source in sorted(folder.rglob("*")):
        target = destination / source.relative_to(folder)
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)


def artifact_store(settings: Settings) -> ArtifactStore:
    if settings.artifact_root is not None:
        return FolderArtifacts(settings.artifact_root, shared=True)
    return FolderArtifacts(settings.adapters_dir)


def folders_problem(settings: Settings) -> str | None:
    """Why a worker here could not keep what training writes (logs, checkpoints, adapters), or None."""
    try:
        return _folders_problem(settings)
    except OSError as error:  # a folder above the data folder this user may not look into
        return f"TUNEDECK_DATA_DIR: {settings.data_dir} cannot be reached ({error.strerror or error})"


def _folders_problem(settings: Settings) -> str | None:
    data_dir = settings.data_dir
    if data_dir.exists() and not data_dir.is_dir():
        return f"TUNEDECK_DATA_DIR: {data_dir} is a file, not a folder"
    return _unwritable(data_dir if data_dir.exists() else _nearest_existing(data_dir), "TUNEDECK_DATA_DIR") or (
        artifact_store(settings).problem()
    )


def _nearest_existing(path: Path) -> Path:
    """The folder that would hold `path` once it is made."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _unwritable(folder: Path, setting: str) -> str | None:
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        return f"{setting}: this user cannot write in {folder}"
    if not folder.is_dir():
        return f"{setting}: {folder} is a file, not a folder"
    return None


def publish_adapter(settings: Settings, folder: Path, run_id: int, base_model: str, name: str | None = None) -> AdapterSpec:
    """The adapter copied where every machine finds it (once: a folder already there stays), described for registration.
    A shared root that is not mounted is an error here too, for scripts as for workers: never made on this disk."""
    store = artifact_store(settings)
    if problem := store.problem():
        raise StoreError(f"the adapter cannot be kept: {problem}")
    location = store.put(Path(folder), f"run-{int(run_id)}")
    size, checksum = store.size_and_checksum(location)  # as the root holds it: an object store would say so itself
    return AdapterSpec(path=location, base_model=base_model, size_bytes=size, checksum=checksum, name=name)
