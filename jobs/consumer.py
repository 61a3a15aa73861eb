"""The worker's consumer, started by `jobs.worker`, which says in one line why when it cannot start.

A Huey consumer for training jobs, plus a reaper thread that fails runs whose worker
is gone. Started by hand (any number, on any machine that reaches the queue and the
store), or auto-started by the app or by start_run(): then it holds the data
directory's worker lock so only one auto-started worker runs, and it exits with its
parent (--parent) or after --idle-exit seconds with nothing to do.
"""

import argparse
import logging
import os
import signal
import threading
import time

from huey.consumer import Consumer

from core import journal, open_store
from core.artifacts import folders_problem
from core.errors import TuneDeckError
from core.settings import get_settings
from core.store import TrackingStore
from core.store_server import JOURNAL_SCAN
from core.store_url import safe_message
from jobs import supervisor
from jobs.config import huey, ready_queue
from jobs.lock import announce_worker, hand_started_worker, hold_worker_lock
from jobs.reaper import reap
from jobs.tasks import live_job_ids, training_waits

# An idle consumer polls the queue again after 0.1 s, backing off to this: a run queued on an idle worker starts within
# a second (Huey's default backs off to 10 s). One dequeue query a second per worker thread costs next to nothing.
MAX_POLL_DELAY = 1.0
BACKGROUND_FAILED = "background check failed"


def _every(seconds: float, action) -> None:
    def loop() -> None:
        while True:
            time.sleep(seconds)
            try:
                action()
            except Exception:
                logging.getLogger("tunedeck.worker").exception(BACKGROUND_FAILED)

    threading.Thread(target=loop, daemon=True).start()


def _stop_when(condition, signum: int) -> None:
    """Send this process signum once condition() holds: the consumer's own shutdown path. Once only: a second stop
    signal tells the consumer to stop at once, not to let the trainings stop first."""
    sent = threading.Event()

    def check() -> None:
        if not sent.is_set() and condition():
            sent.set()
            os.kill(os.getpid(), signum)

    _every(1.0, check)


def _idle_for(seconds: float, clock=time.monotonic):
    store = open_store()
    last_busy = clock()

    def idle() -> bool:
        nonlocal last_busy
        if training_waits() or store.list_active_runs():
            last_busy = clock()
        return clock() - last_busy > seconds

    return idle


def _reachable_store() -> TrackingStore:
    """The store and the queue, reached now, and folders that can keep what training writes: a worker that lacks
    them refuses to start instead of taking jobs it could never record (or training runs whose adapters it then loses)."""
    if problem := folders_problem(get_settings()):
        raise _not_starting(problem)
    try:
        store = open_store()
        store.list_active_runs()
        ready_queue()
    except TuneDeckError as error:
        raise _not_starting(str(error)) from None
    except Exception as error:  # the queue's own driver
        raise _not_starting(f"cannot reach the queue: {safe_message(error)}") from None
    return store


class QuietRepeats(logging.Filter):
    """While the database is down every poll fails: the first failure is logged with its traceback, then one line a
    minute says how many more there were, instead of a traceback per poll (10,000 lines in 80 s)."""

    REPEATING = frozenset({"Error reading from queue", "Error reading schedule.", BACKGROUND_FAILED})

    def __init__(self, every: float = 60.0, clock=time.monotonic):
        super().__init__()
        self.every, self.clock = every, clock
        self.said: dict[str, float] = {}  # when each repeating message was last let through
        self.seen: dict[str, float] = {}  # when it last came at all
        self.held: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = record.msg
        if key not in self.REPEATING:
            return True
        now, said, seen = self.clock(), self.said.get(key), self.seen.get(key)
        self.seen[key] = now
        if seen is not None and now - seen >= self.every:  # quiet a while since it last came: a new outage
            said, self.held[key] = None, 0
        if said is not None and now - said < self.every:
            self.held[key] = self.held.get(key, 0) + 1
            return False
        if said is not None:  # still failing: one line, the error without its traceback
            error = record.exc_info[1] if record.exc_info else None
            record.msg = f"{key} (again; {self.held.pop(key, 0)} more since the last line): {safe_message(error) if error else ''}"
            record.args, record.exc_info, record.exc_text = (), None, None
        self.said[key] = now
        return True


class StoppingConsumer(Consumer):
    """Huey's consumer with every stop signal a graceful one that also stops the trainings (supervisor.SHUTTING_DOWN),
    so their runs are recorded as stopped by a shutdown. Huey's own SIGTERM (`kill PID`, `docker stop`, systemd)
    ended this process under its trainings and left their runs running; its SIGHUP (a closed terminal) restarted by
    running jobs/worker.py again as a script, which cannot import the project."""

    STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._signal_actions = {signum: (False, True) for signum in self.STOP_SIGNALS}  # (restart, graceful): Huey's table

    def _handle_signal(self, signum, frame):
        if supervisor.SHUTTING_DOWN.is_set():  # a second stop signal, of any kind: stop at once, as Huey does for one
            raise KeyboardInterrupt
        supervisor.SHUTTING_DOWN.set()
        super()._handle_signal(signum, frame)


class NotStarting(Exception):
    """Why this worker will take no jobs; `jobs.worker` says it in one line and exits with code 2."""


def _not_starting(reason: str) -> NotStarting:
    logging.getLogger("tunedeck.worker").error("not starting: %s", reason)
    return NotStarting(reason)


def main(args: argparse.Namespace) -> None:
    """Run until stopped, with the options `jobs.worker.arguments` read."""
    settings = get_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    quiet = QuietRepeats()
    for handler in logging.getLogger().handlers:
        handler.addFilter(quiet)
    lock = hold_worker_lock(settings) if args.auto else None
    if args.auto and (lock is None or hand_started_worker(settings)):  # one runs already: it takes the jobs
        logging.getLogger("tunedeck.worker").info("another worker runs on %s; exiting", settings.data_dir)
        return
    store = _reachable_store()  # the data folder checked too, before this worker says it runs there
    if not args.auto:
        try:
            lock = announce_worker(settings)  # held while this runs: no auto worker starts beside it
        except OSError as error:
            raise _not_starting(f"cannot say in {settings.data_dir} that this worker runs: {error}") from None
    reap(store, settings, live_job_ids)
    _every(max(1.0, settings.heartbeat_interval), lambda: reap(store, settings, live_job_ids))
    if not store.replays_journals:  # no store server on this machine replays what killed writers journaled here: the worker does
        _every(JOURNAL_SCAN, lambda: journal.recover(store, store.data_dir / "journal"))
    if args.parent:  # the app died: stop its runs' trainings, recording them as stopped, and exit
        _stop_when(lambda: os.getppid() != args.parent, signal.SIGTERM)
    if args.idle_exit:  # nothing to do: a graceful exit
        _stop_when(_idle_for(args.idle_exit), signal.SIGINT)
    consumer = StoppingConsumer(
        huey, workers=args.workers or settings.workers, worker_type="thread", periodic=True, max_delay=MAX_POLL_DELAY
    )
    consumer.run()
    logging.shutdown()
    os._exit(0)  # background threads may be inside DuckDB; tearing them down would abort the process

