"""Real worker processes on the session's data directory (TUNEDECK_DATA_DIR, set in tests/conftest.py)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.settings import get_settings
from jobs import processes
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = str(ROOT / "data" / "sample" / "sentiment.csv")


def start_worker(*args: str, **env: str) -> subprocess.Popen:
    log = (get_settings().data_dir / f"worker-test-{time.monotonic_ns()}.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.worker", *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}
    )


def stop_worker(worker: subprocess.Popen) -> None:
    processes.stop(worker)


@pytest.fixture
def worker():
    process = start_worker("--workers", "2")
    yield process
    stop_worker(process)


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie has ended, though it is still listed until reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")  # a zombie has ended


def wait_until_terminal(store, run_ids: list[int], timeout: float = 120):
    return wait_for(
        lambda: all(store.get_run(r).status.is_terminal for r in run_ids) and [store.get_run(r) for r in run_ids],
        timeout,
        "runs to finish",
        every=0.2,  # each look asks the store for every run
    )
