"""Read an MLflow tracking store directly: its SQLite database (stdlib sqlite3) or its `mlruns` folder.

MLflow itself is not needed. Run statuses map FINISHED -> completed, FAILED -> failed,
KILLED -> cancelled; RUNNING and SCHEDULED runs are skipped until they end, deleted runs and
experiments always. Params keep their names; tags stay the run's tags, except MLflow's own
`mlflow.*` tags (the run name is the run's name). A tag our tags cannot hold (a name with other
characters, a value over 1,000 characters) becomes the param `tags.<name>`, with a note saying so.
"""

import sqlite3
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

from core.errors import ValidationError, failure_text
from core.importers.runs import NOT_READ, UNREADABLE, Series, SourceRun
from core.run_params import IMPORT_PREFIX
from core.store_url import redacted
from core.tags import checked_tags

STATUSES = {"FINISHED": "completed", "FAILED": "failed", "KILLED": "cancelled"}
FOLDER_STATUSES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
RUN_NAME_TAG = "mlflow.runName"
SQLITE_HEADER = b"SQLite format 3\x00"


def locate(uri: str) -> tuple[str, Path]:
    """("sqlite", file) or ("folder", mlruns) for a tracking URI or a path; a ValidationError for anything else."""
    parsed = urlparse(uri)
    hint = ""
    if parsed.scheme == "sqlite":
        if not uri.startswith("sqlite:///"):  # sqlite://mlflow.db: MLflow would not take it either
            raise ValidationError(
                f"{redacted(uri)} is not an SQLite URL: write sqlite:/// and the file (sqlite:///mlflow.db in this folder, "
                "four slashes for a full path: sqlite:////home/me/mlflow.db), or give the file's path alone"
            )
        path = Path(unquote(uri.removeprefix("sqlite:///")))  # sqlite:///relative.db, sqlite:////absolute.db
        if len(path.parts) > 1 and not path.is_absolute():  # sqlite:///tmp/x.db meant /tmp/x.db, likely
            hint = f" (sqlite:/// names a file in this folder; for {'/' + path.as_posix()} write sqlite:////{path.as_posix()})"
    elif parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    elif not parsed.scheme:
        path = Path(uri)
    else:
        raise ValidationError(
            f"cannot read {redacted(uri)}: give an MLflow SQLite database (sqlite:///mlflow.db or its path) or an mlruns folder; "
            "a tracking server's database can be read by its sqlite:// file on the server"
        )
    if path.is_dir():
        return "folder", path
    if path.is_file():
        try:
            if is_sqlite_file(path):
                return "sqlite", path
        except OSError as error:
            raise ValidationError(f"cannot read {path}: {error.strerror or error}") from None
        raise ValidationError(f"{path} is not an SQLite database; give MLflow's mlflow.db or its mlruns folder")
    raise ValidationError(f"{path} does not exist{hint}; give MLflow's database file (mlflow.db) or its mlruns folder")


def is_sqlite_file(path: Path) -> bool:
    """Whether a file is an SQLite database, by its first bytes (MLflow's store, or a TuneDeck store mistaken for one)."""
    if not path.is_file():
        return False
    with path.open("rb") as file:
        return file.read(len(SQLITE_HEADER)) == SQLITE_HEADER


def read(uri: str, skipped: list[str]) -> list[SourceRun]:
    """Every importable run in the store at uri; reasons for the others are appended to skipped."""
    kind, path = locate(uri)
    source = _sqlite_runs(path) if kind == "sqlite" else _folder_runs(path, skipped)
    runs = []
    for run_id, experiment, name, status, deleted, (started_ms, ended_ms), params, tags, metrics in source:
        if deleted:
            skipped.append(f"run {name!r} (mlflow:{run_id}): deleted in MLflow")
        elif status not in STATUSES:
            skipped.append(f"run {name!r} (mlflow:{run_id}): still {status} in MLflow; import again once it has ended")
        else:
            run = _source_run(run_id, experiment, name, status, started_ms, params, tags, metrics, uri)
            run.started_ms, run.ended_ms = started_ms or None, ended_ms or None
            runs.append(run)
    return runs


def _source_run(run_id, experiment, name, status, started_ms, params, tags, metrics, uri) -> SourceRun:
    params, kept, notes = dict(params), {}, []
    for key, value in tags.items():
        if key.startswith("mlflow."):
            continue
        try:
            kept |= checked_tags({key: value})
        except ValidationError as error:
            params[f"tags.{key}"] = value
            notes.append(f"tag {key!r} kept as the param 'tags.{key}': {error}")
    if started_ms:
        params[IMPORT_PREFIX + "started_at"] = datetime.fromtimestamp(started_ms / 1000, UTC).isoformat(timespec="seconds")
    return SourceRun(
        source_id=f"mlflow:{run_id}",
        experiment=experiment,
        name=name or run_id,
        status=STATUSES[status],
        params=params,
        read_metrics=metrics,
        error=f"{status} in MLflow" if status == "FAILED" else None,
        description=f"Imported from MLflow ({uri}).",
        notes=notes,
        tags=kept,
    )


def as_series(rows: list[tuple[str, int, float, int]]) -> dict[str, Series]:
    """(key, step, value, timestamp ms) rows, in logging order, grouped by key."""
    grouped: dict[str, list[tuple[int, float, int]]] = {}
    for key, step, value, timestamp in rows:
        grouped.setdefault(key, []).append((step, value, timestamp))
    return {key: _series(points) for key, points in grouped.items()}


def _series(points: list[tuple[int, float, int]]) -> Series:
    steps, values, wall_ms = (np.array(column) for column in zip(*points, strict=True))
    values = values.astype(np.float64)
    values[np.abs(values) >= sys.float_info.max] = np.inf  # MLflow's SQL store keeps infinity as the largest float
    return Series(steps.astype(np.int64), values, wall_ms.astype(np.int64))


# -- the SQLite store ----------------------------------------------------------------------------
def _sqlite_runs(path: Path) -> Iterator[tuple]:
    try:
        yield from _sqlite_rows(path)
    except sqlite3.DatabaseError as error:  # a damaged file: "file is not a database", "disk image is malformed"
        raise ValidationError(f"{path} cannot be read as an SQLite database ({error}); is it MLflow's mlflow.db, whole?") from None


def _sqlite_rows(path: Path) -> Iterator[tuple]:
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"experiments", "runs", "metrics", "params", "tags"} <= tables:
            raise ValidationError(f"{path} is an SQLite database but not an MLflow tracking store (no runs table)")
        runs = con.execute(
            "SELECT r.run_uuid, e.name, r.name, r.status, r.lifecycle_stage = 'deleted' OR e.lifecycle_stage = 'deleted', "
            "r.start_time, r.end_time FROM runs r JOIN experiments e USING (experiment_id) "
            "ORDER BY e.experiment_id, r.start_time, r.run_uuid"
        ).fetchall()
        for run_id, experiment, name, status, deleted, started_ms, ended_ms in runs:
            params = dict(con.execute("SELECT key, value FROM params WHERE run_uuid = ?", [run_id]).fetchall())
            tags = dict(con.execute("SELECT key, value FROM tags WHERE run_uuid = ?", [run_id]).fetchall())
            metrics = _sqlite_metrics(path, run_id)
            times = (started_ms, ended_ms)
            yield run_id, experiment, name or tags.get(RUN_NAME_TAG), status, deleted, times, params, tags, metrics
    finally:
        con.close()


def _sqlite_metrics(path: Path, run_id: str):
    def read_metrics() -> dict[str, Series]:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = con.execute(
                "SELECT key, step, CASE WHEN is_nan THEN 'NaN' ELSE value END, timestamp FROM metrics "
                "WHERE run_uuid = ? ORDER BY key, timestamp, rowid",
                [run_id],
            ).fetchall()
        finally:
            con.close()
        return as_series([(key, step, float(value), timestamp) for key, step, value, timestamp in rows])

    return read_metrics


# -- the mlruns folder ---------------------------------------------------------------------------
def read_meta(path: Path) -> dict[str, str]:
    """The flat `key: value` lines of an MLflow meta.yaml (nested entries such as `tags: []` are ignored)."""
    meta = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition(":")
        if not sep or line.startswith((" ", "-", "#")):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1].replace("''", "'")
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            # YAML's escapes (\U0001F680 for an emoji) decoded; the text's own non-ASCII characters kept as they are
            value = value[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        meta[key.strip()] = value
    return meta


def _files(folder: Path) -> dict[str, Path]:
    """name -> file under folder; a name with '/' (eval/loss) lives in subfolders."""
    if not folder.is_dir():
        return {}
    return {path.relative_to(folder).as_posix(): path for path in sorted(folder.rglob("*")) if path.is_file()}


def _folder_runs(root: Path, skipped: list[str]) -> Iterator[tuple]:
    experiments = sorted(path.parent for path in root.glob("*/meta.yaml") if not path.parent.name.startswith("."))
    if not experiments:
        raise ValidationError(f"{root} holds no MLflow experiments (no <experiment>/meta.yaml); give MLflow's mlruns folder")
    for folder in experiments:
        try:
            experiment = read_meta(folder / "meta.yaml")
            if not experiment.get("name"):
                raise ValueError("it names no experiment")
        except UNREADABLE as error:
            skipped.append(f"experiment folder {folder.name!r}: its meta.yaml {NOT_READ} ({failure_text(error)})")
            continue
        found = []
        for meta_path in folder.glob("*/meta.yaml"):
            try:
                meta = read_meta(meta_path)
                found.append((meta.get("start_time", ""), meta_path, _folder_run(meta_path, meta, experiment)))
            except UNREADABLE as error:  # one damaged run folder: the others are imported
                skipped.append(f"run folder {meta_path.parent.name!r}: {NOT_READ} ({failure_text(error)})")
        for _, _, run in sorted(found, key=lambda item: item[:2]):
            yield run


def _folder_run(meta_path: Path, meta: dict[str, str], experiment: dict[str, str]) -> tuple:
    run_folder = meta_path.parent
    tags = {key: path.read_text(encoding="utf-8") for key, path in _files(run_folder / "tags").items()}
    params = {key: path.read_text(encoding="utf-8") for key, path in _files(run_folder / "params").items()}
    status = FOLDER_STATUSES.get(int(meta.get("status") or 0), "UNKNOWN")
    deleted = "deleted" in (meta.get("lifecycle_stage"), experiment.get("lifecycle_stage"))
    name = meta.get("run_name") or tags.get(RUN_NAME_TAG)
    times = tuple(int(meta[key]) if meta.get(key, "").isdigit() else None for key in ("start_time", "end_time"))
    return meta["run_id"], experiment["name"], name, status, deleted, times, params, tags, _folder_metrics(run_folder)


def _folder_metrics(run_folder: Path):
    def read_metrics() -> dict[str, Series]:
        rows = []
        for key, path in _files(run_folder / "metrics").items():
            for line in path.read_text(encoding="utf-8").splitlines():
                timestamp, value, *step = line.split()
                rows.append((key, int(step[0]) if step else 0, float(value), int(timestamp)))
        return as_series(rows)

    return read_metrics
