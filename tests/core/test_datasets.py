import re
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core.datasets import gone, inspect_dataset, preview, read_dataset, require_columns, stored_reference, training_warnings
from core.errors import DatasetError

ROWS = pl.DataFrame({"text": ["tasty soup", "cold fries", "open on monday"], "label": ["positive", "negative", "neutral"]})


@pytest.fixture
def write_rows(tmp_path):
    """Write ROWS in the format the file name asks for; return the path."""
    writers = {
        ".csv": pl.DataFrame.write_csv,
        ".jsonl": pl.DataFrame.write_ndjson,
        ".ndjson": pl.DataFrame.write_ndjson,
        ".parquet": pl.DataFrame.write_parquet,
    }

    def write(name: str) -> Path:
        path = tmp_path / name
        writers[path.suffix](ROWS, path)
        return path

    return write


@pytest.mark.parametrize("name", ["reviews.csv", "reviews.jsonl", "reviews.ndjson", "reviews.parquet"])
def test_every_supported_format_reads_to_the_same_frame(write_rows, name):
    assert_frame_equal(read_dataset(str(write_rows(name))), ROWS)


def test_extensions_are_matched_regardless_of_case(write_rows):
    path = write_rows("reviews.csv")
    assert_frame_equal(read_dataset(path.rename(path.with_name("REVIEWS.CSV"))), ROWS)


def test_preview_gives_shape_dtypes_and_first_rows(write_rows):
    path = write_rows("reviews.jsonl")

    shown = preview(path, rows=2)

    assert (shown.path, shown.format, shown.n_rows) == (path, "jsonl", 3)
    assert shown.columns == {"text": "String", "label": "String"}
    assert_frame_equal(shown.head, ROWS.head(2))


def test_missing_label_column_names_file_and_column(write_rows):
    path = write_rows("reviews.csv")

    with pytest.raises(DatasetError) as caught:
        require_columns(read_dataset(path).drop("label"), path, ["text", "label"])

    assert str(path) in str(caught.value)
    assert "'label'" in str(caught.value)
    assert "found columns: 'text'" in str(caught.value)


def test_present_columns_pass_quietly(write_rows):
    path = write_rows("reviews.parquet")
    require_columns(read_dataset(path), path, ["label", "text"])


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "nowhere.csv"


def _directory(tmp_path: Path) -> Path:
    (tmp_path / "folder.csv").mkdir()
    return tmp_path / "folder.csv"


def _file(name: str, content: bytes):
    def make(tmp_path: Path) -> Path:
        (tmp_path / name).write_bytes(content)
        return tmp_path / name

    return make


@pytest.mark.parametrize(
    ("make", "hint"),
    [
        (_missing, "does not exist"),
        (_directory, "is a directory"),
        (_file("empty.csv", b""), "is empty"),
        (_file("empty.parquet", b""), "is empty"),
        (_file("reviews.xlsx", b"text,label\na,b\n"), "unsupported extension '.xlsx'"),
        (_file("reviews", b"text,label\na,b\n"), "unsupported extension '(none)'"),
        (_file("latin1.csv", b"text,label\ncaf\xe9,1\n"), "cannot read"),
        (_file("broken.jsonl", b'{"text": "ok", "label": 1}\n{not json\n'), "cannot read"),
        (_file("truncated.parquet", b"PAR1" + b"\x00" * 40), "cannot read"),
    ],
    ids=[
        "missing",
        "directory",
        "empty-csv",
        "empty-parquet",
        "wrong-extension",
        "no-extension",
        "not-utf8-csv",
        "corrupt-jsonl",
        "corrupt-parquet",
    ],
)
def test_bad_dataset_files_give_a_clear_error_naming_the_file(tmp_path, make, hint):
    path = make(tmp_path)

    with pytest.raises(DatasetError) as caught:
        read_dataset(path)

    assert str(path) in str(caught.value)
    assert hint in str(caught.value)


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("text,label\nhello world,positive\n".encode("utf-16"), "it is UTF-16 text, not UTF-8 text"),
        ("text,label\nhello world,positive\n".encode("utf-32"), "it is UTF-32 text, not UTF-8 text"),
        (b"text,label\nhello\x00world,positive\n", "it is binary data (it holds NUL bytes), not UTF-8 text"),
    ],
    ids=["utf-16", "utf-32", "nul"],
)
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_text_file_that_is_not_utf8_says_what_it_is_and_how_to_save_it(tmp_path, content, said, suffix):
    """Excel's "Unicode Text" (UTF-16) read as UTF-8 gave columns full of NULs, which the preview could not draw."""
    path = tmp_path / f"reviews{suffix}"
    path.write_bytes(content)

    with pytest.raises(DatasetError) as caught:
        preview(path)

    assert str(caught.value) == f"cannot read {path} as {suffix[1:]}: {said}; save it again as UTF-8 (in Excel: \"CSV UTF-8\")"


@pytest.mark.parametrize(
    ("lines", "said"), [('{broken', "line 3 is not JSON: '{broken'"), ("[1, 2]", "line 3 is JSON but not an object: '[1, 2]'")]
)
def test_a_json_lines_file_that_cannot_be_read_names_its_first_bad_line(tmp_path, lines, said):
    """Polars said "ExpectedObjectContent at character 1 ('b')": no line number to go to."""
    path = tmp_path / "reviews.jsonl"
    path.write_text('{"text": "ok", "label": 1}\n\n' + lines + "\n")

    with pytest.raises(DatasetError, match=re.escape(f"cannot read {path} as jsonl ({said}); a .jsonl dataset should be")):
        read_dataset(path)


def test_preview_of_a_bad_file_is_the_same_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        preview(tmp_path / "nowhere.parquet")


@pytest.mark.parametrize(
    ("rows", "warned"),
    [
        (ROWS, []),
        (ROWS.drop("label"), ["the builtin trainer (and peft's classification) needs a 'label' column too"]),
        (pl.DataFrame({"prompt": ["q"] * 3, "completion": ["a"] * 3}), ["the builtin trainer (and peft's classification) needs a 'label' column too"]),
        (pl.DataFrame({"foo": [1, 2], "bar": [3, 4]}), ["the builtin and peft trainers read a 'text' column (peft also 'prompt' and 'completion')"]),
        (ROWS.head(0), ["it has no rows; the builtin and peft trainers need at least 2, to hold some out for eval"]),
        (ROWS.head(1), ["it has 1 row; the builtin and peft trainers need at least 2, to hold some out for eval"]),
        (
            ROWS.with_columns(label=pl.lit("positive")),
            ["its 'label' column holds one value only: a classifier needs at least two to learn anything"],
        ),
    ],
    ids=["fine", "no label", "prompt and completion", "other columns", "header only", "one row", "one class"],
)
def test_a_file_the_shipped_trainers_would_refuse_is_warned_of_before_an_experiment_is_made(tmp_path, rows, warned):
    path = tmp_path / "data.csv"
    rows.write_csv(path)

    assert training_warnings(preview(path)) == warned


def test_an_experiment_keeps_the_absolute_path_alone_and_in_team_mode_the_path_as_typed(write_rows, monkeypatch):
    """Alone, a worker started in another folder must find the file; in team mode the workers are other machines,
    where a relative path reads their own checkout."""
    path = write_rows("reviews.csv")
    monkeypatch.chdir(path.parent.parent)
    typed = f"{path.parent.name}/{path.name}"
    shown = inspect_dataset(typed, [path.parent.parent])

    assert stored_reference(shown, team_mode=False) == str(path)
    assert stored_reference(shown, team_mode=True) == typed


def test_only_an_absolute_path_is_judged_gone_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here.csv").write_text("text\n")

    assert gone(tmp_path / "missing.csv")
    assert not gone(tmp_path / "here.csv")
    assert not gone("missing.csv")  # read from each worker's own folder


@pytest.mark.parametrize(
    ("pasted", "why"), [("/data/" + "x" * 10_000, "file name too long"), ("/data/a\x00b.csv", "it has a NUL character")]
)
def test_a_pasted_page_of_text_as_a_dataset_path_is_a_dataset_error_not_a_crash(pasted, why):
    with pytest.raises(DatasetError) as raised:
        inspect_dataset(pasted, [Path("/data")])  # what the create form asks

    assert str(raised.value).endswith(f"cannot be a file here: {why}")
    assert len(str(raised.value)) < 200
