"""Start a worker next to the app or a script, so `streamlit run app.py` alone runs queued jobs."""

import os
import subprocess
import sys
from pathlib import Path

from core.errors import StoreError
from core.settings import Settings
from jobs.lock import worker_running

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def ensure_worker(settings: Settings, parent: int | None = None) -> subprocess.Popen | None:
    """Start an auto worker unless one already runs or TUNEDECK_EMBEDDED_WORKER=0.

    With a parent PID the worker lives as long as that process (the Streamlit server);
    without one it outlives the calling script and exits when idle.
    """
    if not settings.embedded_worker or worker_running(settings):
        return None
    command = [sys.executable, "-m", "jobs.worker", "--auto"]
    command += ["--parent", str(parent)] if parent else ["--idle-exit", str(settings.worker_idle_exit)]
    env = {**os.environ, "TUNEDECK_DATA_DIR": str(settings.data_dir.resolve())}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    try:
        settings.logs_dir.mkdir(parents=True, exist_ok=True)
        with (settings.logs_dir / "worker.log").open("a", encoding="utf-8") as log:  # the worker keeps its own copy
            return subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=os.getcwd(), start_new_session=parent is None
            )
    except OSError as error:
        raise StoreError(
            f"no worker could be started: {error.strerror or error} ({error.filename or settings.logs_dir}); queued runs "
            "wait until a worker runs (`tunedeck worker`, on a data folder this user can write)"
        ) from None
