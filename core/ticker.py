"""Background threads shared by every open run in a process: one for timed flushes, one for heartbeats.

Threads of their own per run cost ~0.5 ms to start and stop on a busy machine, a tenth of a short run's
whole life through the SDK. A slow job (a store that is busy) delays the others of its kind in the same
process, never another process, and a slow flush never holds up a heartbeat.
"""

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger("tunedeck.ticker")


class Ticker:
    def __init__(self, name: str) -> None:
        self.name = name
        self._numbers = itertools.count(1)
        self._fresh()
        os.register_at_fork(after_in_child=self._fresh)  # a child has none of the parent's threads, nor its runs

    def _fresh(self) -> None:
        self._changed = threading.Condition()  # new: the parent's may have been held by its thread at the fork
        self._jobs: dict[int, list] = {}  # job -> [when due, every how many seconds, what to call]
        self._running = False

    def every(self, seconds: float, call: Callable[[], None]) -> int:
        """Call `call` every `seconds` from now until cancel(job)."""
        with self._changed:
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name=self.name, daemon=True).start()
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
                due = [(number, job) for number, job in self._jobs.items() if job[0] <= now]
                if not due:
                    nearest = min((job[0] for job in self._jobs.values()), default=None)
                    self._changed.wait(None if nearest is None else nearest - now)
                    continue
                for _, job in due:
                    job[0] = now + job[1]
            for number, (_, _, call) in due:
                if number not in self._jobs:
                    continue  # cancelled while an earlier job ran
                try:
                    call()
                except BaseException:  # one run's failing job must not stop the others'
                    log.exception("a periodic job failed")


flushes = Ticker("tunedeck-flushes")
heartbeats = Ticker("tunedeck-heartbeats")
