"""One background thread per process for the periodic work of every open run: timed flushes and heartbeats.

A thread of its own per run cost ~0.5 ms to start and stop on a busy machine, a tenth of a short run's
whole life through the SDK. Each job runs on this thread; a slow one (a store that is busy) delays the
others in the same process, never another process.
"""

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger("tunedeck.ticker")


class Ticker:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._jobs: dict[int, list] = {}  # job -> [when due, every how many seconds, what to call]
        self._numbers = itertools.count(1)
        self._owner: int | None = None  # the process whose thread runs the jobs (a forked child starts its own)

    def every(self, seconds: float, call: Callable[[], None]) -> int:
        """Call `call` every `seconds` from now until cancel(job)."""
        with self._changed:
            if self._owner != os.getpid():
                self._owner = os.getpid()
                self._jobs.clear()  # a forked child's copy of its parent's jobs: not its own runs
                threading.Thread(target=self._run, name="tunedeck-ticker", daemon=True).start()
            job = next(self._numbers)
            self._jobs[job] = [time.monotonic() + seconds, seconds, call]
            self._changed.notify()
            return job

    def cancel(self, job: int | None) -> None:
        """No more calls of the job; one in progress finishes (callers that must wait for it share a lock with it)."""
        with self._changed:
            self._jobs.pop(job, None)

    def _run(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                due = [job for job in self._jobs.values() if job[0] <= now]
                if not due:
                    nearest = min((job[0] for job in self._jobs.values()), default=None)
                    self._changed.wait(None if nearest is None else nearest - now)
                    continue
                for job in due:
                    job[0] = now + job[1]
            for _, _, call in due:
                try:
                    call()
                except Exception:  # one run's failing job must not stop the others' heartbeats
                    log.exception("a periodic job failed")


ticker = Ticker()
