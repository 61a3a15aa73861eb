"""Start a worker next to the app or a script, so `streamlit run app.py` alone runs queued jobs."""

import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from core.errors import StoreError
from core.settings import Settings
from jobs.lock import worker_running
from jobs.worker import NOT_STARTING

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def ensure_worker(settings: Settings, parent: int | None = None) -> subprocess.Popen | None:
    """Start an auto worker unless one already runs or TUNEDECK_EMBEDDED_WORKER=0.

    With a parent PID the worker lives as long as that process (the Streamlit server);
    without one it outlives the calling script and exits when idle.
    """
    if not settings.embedded_worker or worker_running(settings):
        return None
    command = [sys.executable, "-m", "jobs.worker", "--auto"]
    if parent:
        command += ["--parent", str(parent)]
    elif settings.worker_idle_exit:  # 0: it stays until stopped
        command += ["--idle-exit", str(settings.worker_idle_exit)]
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


class EmbeddedWorker:
    """The app server's worker: started with it, and again when it has died. Killed, it is replaced at once; ended
    by itself (it refused to start, or found another worker), it is tried again at most once every RESTART_SECONDS,
    not on every page view. One per server (app.py keeps it)."""

    RESTART_SECONDS = 30.0

    def __init__(self, parent: int, clock: Callable[[], float] = time.monotonic):
        self.parent, self.clock = parent, clock
        self.child: subprocess.Popen | None = None
        self.started_at = -math.inf
        self._lock = threading.Lock()

    def keep(self, settings: Settings) -> str | None:
        """Start a worker if none runs and the last start is long enough ago; what is wrong, if the last one refused."""
        with self._lock:
            if self.child is not None and self.child.poll() is None:
                return None  # still starting or running
            killed = self.child is not None and self.child.returncode < 0
            refused = self.child is not None and self.child.returncode == NOT_STARTING
            if killed or self.clock() - self.started_at >= self.RESTART_SECONDS:
                started = ensure_worker(settings, parent=self.parent)  # None: one runs already, or none is wanted
                if started is not None:
                    self.child, self.started_at = started, self.clock()
                    return None  # a fresh start: nothing is known of it yet
            if refused:
                return f"the app's worker refused to start; its reason is in {settings.logs_dir / 'worker.log'}"
            return None
