"""The committed fixtures (written by make_fixtures.py with MLflow 3.17.2 and TensorBoard) and what they hold."""

import gzip
import json
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


@pytest.fixture
def mlflow_db(tmp_path: Path) -> Path:
    """The MLflow SQLite store, unpacked into a temp folder (it is committed gzipped: 950 KB of mostly empty tables)."""
    path = tmp_path / "mlflow.db"
    with gzip.open(FIXTURES / "mlflow.db.gz", "rb") as source, path.open("wb") as target:
        shutil.copyfileobj(source, target)
    return path


@pytest.fixture
def tensorboard_logdir(tmp_path: Path) -> Path:
    logdir = tmp_path / "tensorboard"
    shutil.copytree(FIXTURES / "tensorboard", logdir)
    return logdir
