"""Adapters are kept where every machine finds them, behind a small interface, with the size and checksum registered."""

import io
import os
import stat
import zipfile
from pathlib import Path

import pytest

from core.artifacts import FolderArtifacts, describe_adapter, publish_adapter
from core.errors import NotFoundError, StoreError
from core.settings import Settings


@pytest.fixture
def adapter(tmp_path):
    folder = tmp_path / "local" / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"r": 8}')
    (folder / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 10)
    return folder


def test_an_adapter_put_under_the_root_is_an_exact_copy(tmp_path, adapter):
    root = FolderArtifacts(tmp_path / "shared")
    location = root.put(adapter, "run-7")
    assert location == str(tmp_path / "shared" / "run-7")
    original = describe_adapter(adapter, "base")
    assert root.size_and_checksum(location) == (original.size_bytes, original.checksum)


def test_an_adapter_put_under_the_root_is_readable_by_the_other_machines_users(tmp_path, adapter):
    """The app may run as another user than the worker: a 0600 weights file (as safetensors writes it) and a 0700
    folder are copied with this process's umask, not their own modes."""
    (adapter / "sub" / "weights.bin").chmod(0o600)
    (adapter / "sub").chmod(0o700)
    before = os.umask(0o022)
    try:
        location = Path(FolderArtifacts(tmp_path / "shared").put(adapter, "run-7"))
    finally:
        os.umask(before)

    assert stat.S_IMODE((location / "sub" / "weights.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE((location / "sub").stat().st_mode) == 0o755


def test_putting_again_replaces_what_was_there(tmp_path, adapter):
    root = FolderArtifacts(tmp_path / "shared")
    root.put(adapter, "run-7")
    (adapter / "sub" / "weights.bin").unlink()
    location = root.put(adapter, "run-7")
    assert sorted(path.name for path in (tmp_path / "shared" / "run-7").rglob("*") if path.is_file()) == ["adapter_config.json"]
    assert root.size_and_checksum(location) == (8, describe_adapter(adapter, "base").checksum)


def test_an_adapter_downloads_as_a_zip_of_its_files(tmp_path, adapter):
    root = FolderArtifacts(tmp_path / "shared")
    archive = zipfile.ZipFile(io.BytesIO(root.open(root.put(adapter, "run-7")).read()))
    assert sorted(archive.namelist()) == ["adapter_config.json", "sub/weights.bin"]
    assert archive.read("sub/weights.bin") == bytes(range(256)) * 10


def test_an_adapter_whose_folder_is_gone_is_a_clear_error(tmp_path):
    with pytest.raises(NotFoundError, match="no longer there"):
        FolderArtifacts(tmp_path).open(str(tmp_path / "run-1"))


def test_publishing_copies_to_the_artifact_root_and_leaves_an_adapter_already_there_in_place(tmp_path, adapter):
    shared = Settings(data_dir=tmp_path / "data", artifact_root=tmp_path / "shared")
    (tmp_path / "shared").mkdir()  # mounted
    spec = publish_adapter(shared, adapter, 3, "tiny-gpt2")
    assert spec.path == str(tmp_path / "shared" / "run-3") and spec.base_model == "tiny-gpt2"
    assert spec.checksum == describe_adapter(adapter, "x").checksum

    local = Settings(data_dir=tmp_path / "data")
    trained_here = local.adapters_dir / "run-4"
    trained_here.parent.mkdir(parents=True)
    adapter.rename(trained_here)
    assert publish_adapter(local, trained_here, 4, "tiny-gpt2").path == str(trained_here)


def test_publishing_to_an_artifact_root_that_is_not_mounted_is_refused_and_makes_nothing(tmp_path, adapter):
    unmounted = Settings(data_dir=tmp_path / "data", artifact_root=tmp_path / "mnt" / "team")

    with pytest.raises(StoreError, match=r"the adapter cannot be kept: TUNEDECK_ARTIFACT_ROOT: .* does not exist; mount"):
        publish_adapter(unmounted, adapter, 3, "tiny-gpt2")

    assert not (tmp_path / "mnt").exists()


def test_an_artifact_root_under_a_folder_this_user_cannot_look_into_is_a_problem_not_a_crash(tmp_path, monkeypatch):
    """As root every folder can be looked into, so the operating system's refusal is played by Path.exists."""

    def refused(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Path, "exists", refused)

    said = FolderArtifacts(tmp_path / "locked" / "share", shared=True).problem()

    assert said == f"TUNEDECK_ARTIFACT_ROOT: {tmp_path / 'locked' / 'share'} cannot be reached (Permission denied)"
