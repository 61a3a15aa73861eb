"""Read the scalars of a TensorBoard log folder: each folder holding event files is one run.

Scalars written as `simple_value` (PyTorch, tensorboardX, TF1) and as one-element tensors of the
`scalars` plugin (TensorFlow 2) are read; histograms, images, text and the rest are skipped.
"""

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from core.errors import ValidationError
from core.importers.runs import Series, SourceRun
from core.importers.tfrecord import as_double, as_float, fields, records, signed, varint

# Event: wall_time 1, step 2, summary 5. Summary: value 1. Value: tag 1, simple_value 2, histo 5, tensor 8, metadata 9.
# SummaryMetadata: plugin_data 1 (plugin_name 1), data_class 4. TensorProto: dtype 1, tensor_shape 2, tensor_content 4,
# float_val 5, double_val 6, int_val 7, int64_val 10.
SCALAR_DATA_CLASS = 1
TENSOR_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 9: "<i8"}  # DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT64


def run_folders(logdir: Path) -> list[Path]:
    if not logdir.is_dir():
        raise ValidationError(f"{logdir} is not a folder; give the TensorBoard log folder (what --logdir was)")
    folders = sorted({path.parent for path in logdir.rglob("*tfevents*") if path.is_file()})
    if not folders:
        raise ValidationError(f"{logdir} holds no TensorBoard event files (events.out.tfevents.*)")
    return folders


def read(logdir: Path, experiment: str | None = None) -> list[SourceRun]:
    """One run per folder with event files, named by its path under logdir, in experiment (default: logdir's name)."""
    logdir = logdir.resolve()
    given = experiment is not None
    experiment = experiment if given else logdir.name  # an empty --experiment is refused as a name, not ignored
    runs = []
    for folder in run_folders(logdir):
        name = folder.relative_to(logdir).as_posix() if folder != logdir else logdir.name
        notes: list[str] = []
        runs.append(
            SourceRun(
                source_id=f"tensorboard:{folder}",
                experiment=experiment,
                name=name,
                status="completed",
                params={},
                read_metrics=_reader(folder, notes),
                description=f"Imported from TensorBoard logs in {logdir}.",
                notes=notes,
                metrics_only=True,
                experiment_given=given,
            )
        )
    return runs


def _reader(folder: Path, notes: list[str]):
    def read_metrics() -> dict[str, Series]:
        points: dict[str, list[tuple[int, float, int]]] = {}
        others: dict[str, str] = {}
        for path in sorted(p for p in folder.glob("*tfevents*") if p.is_file()):
            for tag, step, value, wall_ms in scalars(path, others, notes):
                points.setdefault(tag, []).append((step, value, wall_ms))
        notes.extend(f"{tag!r} is not a scalar ({plugin})" for tag, plugin in sorted(others.items()))
        return {tag: _series(rows) for tag, rows in points.items()}

    return read_metrics


def _series(rows: list[tuple[int, float, int]]) -> Series:
    steps, values, wall_ms = zip(*rows, strict=True)
    return Series(np.array(steps, dtype=np.int64), np.array(values, dtype=np.float64), np.array(wall_ms, dtype=np.int64))


def scalars(path: Path, others: dict[str, str], problems: list[str] | None = None) -> Iterator[tuple[str, int, float, int]]:
    """(tag, step, value, wall time ms) of each scalar in an event file; other tags land in others with their kind, and
    a file not readable to its end says so in problems."""
    plugins: dict[str, str] = {}  # TensorFlow 2 sends a tag's metadata with its first value only
    for record in records(path, problems):
        wall_time, step, summary = 0.0, 0, None
        for number, _, value in fields(record):
            if number == 1:
                wall_time = as_double(value)
            elif number == 2:
                step = signed(value)
            elif number == 5:
                summary = value
        if summary is None:
            continue
        for number, _, value in fields(summary):
            if number == 1:
                found = _scalar(value, plugins, others)
                if found is not None:
                    yield found[0], step, found[1], round(wall_time * 1000)


def _scalar(value: bytes, plugins: dict[str, str], others: dict[str, str]) -> tuple[str, float] | None:
    tag, simple, tensor, kind = "", None, None, None
    for number, _, item in fields(value):
        if number == 1:
            tag = item.decode("utf-8", errors="replace")
        elif number == 2:
            simple = as_float(item)
        elif number == 8:
            tensor = item
        elif number == 9:
            kind = _plugin(item)
        elif number in (3, 4, 5, 6):
            kind = kind or {3: "histogram", 4: "image", 5: "histogram", 6: "audio"}[number]
    if kind:
        plugins.setdefault(tag, kind)
    if simple is not None:
        return tag, simple
    if tensor is not None and plugins.get(tag) == "scalars":
        number = _tensor_scalar(tensor)
        if number is not None:
            return tag, number
    others.setdefault(tag, plugins.get(tag) or "no scalar value")
    return None


def _plugin(metadata: bytes) -> str:
    name, data_class = "", 0
    for number, _, item in fields(metadata):
        if number == 1:
            for inner, _, part in fields(item):
                if inner == 1:
                    name = part.decode("utf-8", errors="replace")
        elif number == 4:
            data_class = item
    return "scalars" if name == "scalars" or data_class == SCALAR_DATA_CLASS else (name or "unknown plugin")


def _tensor_scalar(tensor: bytes) -> float | None:
    """The one number of a scalar tensor, from tensor_content or the typed value lists."""
    dtype, content, numbers = 0, b"", []
    for number, wire, item in fields(tensor):
        if number == 1:
            dtype = item
        elif number == 4:
            content = item
        elif number == 5:
            numbers += [as_float(item)] if wire == 5 else list(struct.unpack(f"<{len(item) // 4}f", item))
        elif number == 6:
            numbers += [as_double(item)] if wire == 1 else list(struct.unpack(f"<{len(item) // 8}d", item))
        elif number in (7, 10):
            numbers += [signed(item)] if wire == 0 else _packed_varints(item)
    if content and dtype in TENSOR_DTYPES:
        numbers = np.frombuffer(content, dtype=TENSOR_DTYPES[dtype]).tolist()
    return float(numbers[0]) if len(numbers) == 1 else None


def _packed_varints(data: bytes) -> list[int]:
    values, offset = [], 0
    while offset < len(data):
        value, offset = varint(data, offset)
        values.append(signed(value))
    return values
