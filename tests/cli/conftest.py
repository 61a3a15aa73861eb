"""Run `tunedeck` as a user would: a separate process, its own data folder."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment without the test session's TuneDeck settings, with a data folder of the test's own."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TUNEDECK_")}
    quick_exits = {"TUNEDECK_STORE_SERVER_IDLE_EXIT": "3", "TUNEDECK_WORKER_IDLE_EXIT": "2"}  # nothing outlives the test
    return {**env, "TUNEDECK_DATA_DIR": str(data_dir), **quick_exits, **extra}


@pytest.fixture
def tunedeck(tmp_path):
    """Run the console script's entry point (tunedeck.cli:main) in a child process; returns the finished process."""

    def run(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "tunedeck.cli", *args],
            cwd=cwd,
            env=clean_env(tmp_path / "data", **env),
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run
