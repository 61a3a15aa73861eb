"""A TuneDeck worker: `python -m jobs.worker` (or `tunedeck worker`); the consumer itself is `jobs.consumer`.

Importing the consumer opens the queue where the settings say: a data folder that cannot hold it, or a setting
that is wrong, ends the worker here with one line saying why (exit code 2), as any other reason not to start does.
"""

import argparse
import sys

from huey.exceptions import ConfigurationError

from core.errors import TuneDeckError
from core.settings import MAX_WORKERS

NOT_STARTING = 2  # the exit code of a worker that refused to start (the app's embedded worker reads it too)


def _refuse(reason: str) -> None:
    print(f"tunedeck worker: not starting: {reason}", file=sys.stderr, flush=True)
    sys.exit(NOT_STARTING)


def _jobs_at_once(text: str) -> int:
    try:
        workers = int(text)
    except ValueError:
        workers = 0
    if not 1 <= workers <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"a whole number from 1 to {MAX_WORKERS}, got {text!r}")
    return workers


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"a number of seconds more than 0, got {text!r}")
    return seconds


def arguments(argv: list[str] | None) -> argparse.Namespace:
    """Read before the queue opens: `--help` or a mistyped option answers without touching the queue or the store."""
    parser = argparse.ArgumentParser(prog="tunedeck worker", description="A TuneDeck worker: runs queued training jobs.")
    parser.add_argument("--workers", type=_jobs_at_once, default=None, help="jobs run at once (default TUNEDECK_WORKERS)")
    parser.add_argument(
        "--auto", action="store_true", help="take the data directory's worker lock; exit if another worker holds it"
    )
    parser.add_argument("--parent", type=int, default=None, help="exit when this process ends")
    parser.add_argument(
        "--idle-exit", type=_seconds, default=None, help="exit after this many seconds with no queued or running job"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    try:
        from jobs import consumer
    except TuneDeckError as error:
        _refuse(str(error))
    except ConfigurationError as error:  # Huey's own: a queue URL whose driver is not installed (redis://, no redis)
        _refuse(f"{str(error).rstrip('.')}, or leave TUNEDECK_QUEUE_URL empty for the queue the store's settings give")
    try:
        consumer.main(args)
    except consumer.NotStarting as error:  # the store or the queue cannot be reached
        _refuse(str(error))


if __name__ == "__main__":
    main()
