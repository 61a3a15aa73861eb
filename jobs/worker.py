"""A TuneDeck worker: `python -m jobs.worker` (or `tunedeck worker`); the consumer itself is `jobs.consumer`.

Importing the consumer opens the queue where the settings say: a data folder that cannot hold it, or a setting
that is wrong, ends the worker here with one line saying why (exit code 2), as any other reason not to start does.
"""

import sys

from huey.exceptions import ConfigurationError

from core.errors import TuneDeckError

NOT_STARTING = 2  # the exit code of a worker that refused to start (the app's embedded worker reads it too)


def _refuse(reason: str) -> None:
    print(f"tunedeck worker: not starting: {reason}", file=sys.stderr, flush=True)
    sys.exit(NOT_STARTING)


def main(argv: list[str] | None = None) -> None:
    try:
        from jobs import consumer
    except TuneDeckError as error:
        _refuse(str(error))
    except ConfigurationError as error:  # Huey's own: a queue URL whose driver is not installed (redis://, no redis)
        _refuse(f"{str(error).rstrip('.')}, or leave TUNEDECK_QUEUE_URL empty for the queue the store's settings give")
    try:
        consumer.main(argv)
    except consumer.NotStarting as error:  # the store or the queue cannot be reached
        _refuse(str(error))


if __name__ == "__main__":
    main()
