"""Every error TuneDeck raises on purpose: one base class, a handful of kinds.

Messages say what went wrong and what to do next; the UI shows them as they are.
"""


class TuneDeckError(Exception):
    """Base class: catch this at a boundary to show a friendly message."""


class NotFoundError(TuneDeckError):
    """An experiment, run or adapter ID that is not in the store."""


class ConflictError(TuneDeckError):
    """The request clashes with what is stored (a taken name, a live run)."""


class ValidationError(TuneDeckError):
    """Bad input, with one message per field so a form can show each next to its widget."""

    def __init__(self, message: str, field_errors: dict[str, str] | None = None):
        super().__init__(message)
        self.field_errors = field_errors or {}


class InvalidTransitionError(TuneDeckError):
    """A run status change the lifecycle does not allow."""


class DatasetError(TuneDeckError):
    """A dataset reference that cannot be read or does not fit the trainer."""


class StoreBusyError(TuneDeckError):
    """The store stayed locked by other processes past the retry budget."""


class StoreError(TuneDeckError):
    """The database failed in a way we did not expect (disk full, corrupt file)."""


class StoreUnavailableError(StoreError):
    """The store could not be reached just now (a database server stopped or restarting, a lost connection, a store
    server that does not answer): the same request can succeed once it is back."""


class OwnerLostError(StoreUnavailableError):
    """The store's owner stopped while it had a request: whether the request took effect is not known."""


# What a later try of the same request can get past: everything else is an answer to act on.
TRANSIENT = (StoreBusyError, StoreUnavailableError)


def failure_text(error: BaseException) -> str:
    """What a failed run's row says of the error that failed it: ours are sentences already ("dataset file ... does not
    exist"); anything else keeps its type, often most of what it says (KeyError: 'label'); Ctrl-C says so."""
    if isinstance(error, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    if isinstance(error, TuneDeckError):
        return str(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def quoted(text: str) -> str:
    """A name a person typed, inside a sentence, as typed: “C:\\models\\it's” (repr doubled its backslashes and
    switched its quotes)."""
    return f"\u201c{text}\u201d"
