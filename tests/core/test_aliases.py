"""Adapter aliases: production and candidate move between versions in one step; references resolve to adapters."""

import io
import zipfile

import pytest

from core import tracking
from core.aliases import AdapterReference, parse_reference
from core.artifacts import FolderArtifacts, adapter_zip, zip_name
from core.errors import ConflictError, NotFoundError, ValidationError

ADAPTER = {"path": "data/adapters/run-1", "base_model": "tiny-base", "size_bytes": 2048, "checksum": "sha256:abc"}


@pytest.fixture
def versions(store, make_experiment, make_run):
    """Three versions of the adapter 'sentiment' and one of 'other'."""
    experiment_id = make_experiment("sentiment")
    made = [store.complete_run(make_run(experiment_id, status="running"), ADAPTER) for _ in range(3)]
    other = store.complete_run(make_run(experiment_id, status="running"), {**ADAPTER, "name": "other"})
    return [adapter.id for adapter in made], other.id


def test_an_alias_resolves_to_the_version_it_points_at(store, versions):
    ids, _ = versions
    store.set_adapter_alias(ids[1], "production")

    assert store.resolve_adapter("sentiment@production").id == ids[1]
    assert tracking.resolve_adapter("sentiment@production", store=store).version == 2


def test_moving_an_alias_leaves_it_on_one_version_only(store, versions):
    ids, _ = versions
    store.set_adapter_alias(ids[0], "production")

    moved = store.set_adapter_alias(ids[2], "production")

    assert (moved.name, moved.alias, moved.adapter_id, moved.version) == ("sentiment", "production", ids[2], 3)
    assert [(a.alias, a.version) for a in store.list_adapter_aliases("sentiment")] == [("production", 3)]
    assert store.resolve_adapter("sentiment@production").id == ids[2]


def test_an_alias_is_one_alias_whatever_its_case_as_latest_is(store, versions):
    ids, _ = versions
    store.set_adapter_alias(ids[0], "Production")
    store.set_adapter_alias(ids[1], "production")

    assert [(a.alias, a.version) for a in store.list_adapter_aliases("sentiment")] == [("production", 2)]
    assert store.resolve_adapter("sentiment@PRODUCTION").id == ids[1]
    store.remove_adapter_alias("sentiment", "PRODUCTION")
    assert store.list_adapter_aliases("sentiment") == []


def test_an_alias_set_with_capitals_before_they_were_lowered_moves_with_its_lower_case_spelling(store, versions, held):
    ids, _ = versions
    held._write(  # what a store written before aliases were kept in lower case may hold
        lambda con: con.execute(
            "INSERT INTO adapter_aliases (name, alias, adapter_id, updated_at) VALUES (?, ?, ?, ?)",
            ["sentiment", "Production", ids[0], held.clock()],
        )
    )
    assert store.resolve_adapter("sentiment@production").id == ids[0]

    store.set_adapter_alias(ids[2], "production")

    assert [(a.alias, a.version) for a in store.list_adapter_aliases("sentiment")] == [("production", 3)]


def test_aliases_of_different_names_are_apart(store, versions):
    ids, other = versions
    store.set_adapter_alias(ids[0], "production")
    store.set_adapter_alias(other, "production")
    store.set_adapter_alias(ids[2], "candidate")

    listed = [(a.name, a.alias, a.version) for a in store.list_adapter_aliases()]

    assert listed == [("other", "production", 1), ("sentiment", "candidate", 3), ("sentiment", "production", 1)]
    assert store.resolve_adapter("other@production").id == other


def test_a_version_number_or_a_bare_name_resolves_too(store, versions):
    ids, _ = versions

    assert store.resolve_adapter("sentiment@1").id == ids[0]
    assert store.resolve_adapter("sentiment").id == ids[2]
    assert store.resolve_adapter("sentiment@latest").id == ids[2]


def test_a_name_that_holds_an_at_sign_resolves_whole_and_its_versions_still_resolve(store, make_experiment, make_run):
    """An experiment named 'model@2' names its adapters so: the name alone is its latest, as the README says."""
    experiment_id = make_experiment("model@2")
    first, second = (store.complete_run(make_run(experiment_id, status="running"), ADAPTER) for _ in range(2))

    assert store.resolve_adapter("model@2").id == second.id
    assert store.resolve_adapter("model@2@1").id == first.id
    assert store.resolve_adapter("model@2@latest").id == second.id


def test_an_unknown_alias_says_which_aliases_exist(store, versions):
    ids, _ = versions
    store.set_adapter_alias(ids[0], "production")

    with pytest.raises(NotFoundError, match=r"adapter “sentiment” has no alias “prod”; its aliases are: production"):
        store.resolve_adapter("sentiment@prod")


def test_an_alias_on_a_name_without_aliases_says_how_to_set_one(store, versions):
    with pytest.raises(NotFoundError, match="has no aliases yet"):
        store.resolve_adapter("sentiment@production")


def test_an_unknown_name_or_version_says_what_exists(store, versions):
    with pytest.raises(NotFoundError, match=r"no adapter named “sentimental”; adapter names are: other, sentiment"):
        store.resolve_adapter("sentimental@production")
    with pytest.raises(NotFoundError, match=r"adapter “sentiment” has no version 9; its versions are 1 to 3"):
        store.resolve_adapter("sentiment@9")


def test_removing_an_alias_forgets_it(store, versions):
    ids, _ = versions
    store.set_adapter_alias(ids[0], "candidate")

    store.remove_adapter_alias("sentiment", "candidate")

    assert store.list_adapter_aliases() == []
    with pytest.raises(NotFoundError, match="has no alias “candidate”; nothing was removed"):
        store.remove_adapter_alias("sentiment", "candidate")


def test_removing_an_alias_from_a_version_leaves_it_where_someone_moved_it(store, versions):
    ids, _ = versions
    store.set_adapter_alias(ids[2], "production")

    with pytest.raises(ConflictError, match="the alias sentiment@production points at v3 now, not v1; nothing was removed"):
        store.remove_adapter_alias("sentiment", "production", version=1)
    store.remove_adapter_alias("sentiment", "Production", version=3)

    assert store.list_adapter_aliases() == []


@pytest.mark.parametrize(
    ("alias", "message"),
    [
        ("latest", "“latest” always means the newest version"),
        ("3", "start with a letter"),
        ("prod uction", "start with a letter"),
        ("", "an alias must not be empty"),
        ("x" * 65, "the alias is too long: at most 64 characters are allowed, and this one has 65"),
    ],
)
def test_a_bad_alias_is_refused_and_changes_nothing(store, versions, unchanged, alias, message):
    ids, _ = versions

    with pytest.raises(ValidationError, match=message):
        store.set_adapter_alias(ids[0], alias)

    unchanged()


def test_an_alias_for_an_unknown_adapter_is_not_found(store, versions):
    with pytest.raises(NotFoundError, match="no adapter with ID 99"):
        store.set_adapter_alias(99, "production")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sentiment", AdapterReference("sentiment")),
        (" sentiment @ production ", AdapterReference("sentiment", alias="production")),
        ("sentiment@12", AdapterReference("sentiment", version=12)),
        ("sentiment@LATEST", AdapterReference("sentiment")),
        ("team@home@candidate", AdapterReference("team@home", alias="candidate")),
    ],
)
def test_references_parse_into_name_and_version_or_alias(text, expected):
    assert parse_reference(text) == expected


@pytest.mark.parametrize(
    ("text", "message"), [("", "a name, name@version or name@alias"), ("@production", "no adapter name before '@'")]
)
def test_a_malformed_reference_says_how_to_write_one(text, message):
    with pytest.raises(ValidationError, match=message):
        parse_reference(text)


def test_an_adapter_downloads_as_a_zip_of_its_folder(store, make_experiment, make_run, tmp_path):
    folder = tmp_path / "adapter"
    (folder / "nested").mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"r": 8}')
    (folder / "nested" / "weights.bin").write_bytes(b"\x00\x01")
    run_id = make_run(make_experiment("my adapter/1"), status="running")
    adapter = store.complete_run(run_id, {**ADAPTER, "path": str(folder)})

    archive = zipfile.ZipFile(io.BytesIO(adapter_zip(adapter, FolderArtifacts(tmp_path / "adapters"))))

    assert zip_name(adapter) == "my_adapter_1-v1.zip"
    assert sorted(archive.namelist()) == ["my_adapter_1-v1/adapter_config.json", "my_adapter_1-v1/nested/weights.bin"]
    assert archive.read("my_adapter_1-v1/adapter_config.json") == b'{"r": 8}'


def test_an_adapter_whose_folder_is_gone_cannot_be_zipped(store, make_experiment, make_run, tmp_path):
    adapter = store.complete_run(make_run(make_experiment(), status="running"), {**ADAPTER, "path": str(tmp_path / "gone")})

    with pytest.raises(NotFoundError, match="is no longer on disk"):
        adapter_zip(adapter, FolderArtifacts(tmp_path / "adapters"))
