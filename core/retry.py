"""Waiting out a store that is out of reach for a while, where what waits is worth minutes: a run's end."""

import time
from collections.abc import Callable
from typing import TypeVar

from core.errors import TRANSIENT

T = TypeVar("T")

# How long a run's end waits for the store: its training is done, so a database restart of a few minutes must not
# turn it into a failed run (its heartbeats wait as long, and the reaper's outage rule spares it meanwhile).
OUTAGE_SECONDS = 600.0


def until_back(call: Callable[[], T], seconds: float = OUTAGE_SECONDS) -> T:
    """call(), tried again while the store is out of reach or busy, 0.1 s after the first try and twice as long after
    each next one (30 s at most), no try begun past `seconds` (one begun before may wait out its own timeout); then
    the last error. A call that may have taken effect before the connection broke must be one that says so when
    tried again (a run's end: InvalidTransitionError)."""
    deadline = time.monotonic() + seconds
    wait = 0.1
    while True:
        try:
            return call()
        except TRANSIENT:
            if time.monotonic() + wait > deadline:
                raise
        time.sleep(wait)
        wait = min(wait * 2, 30.0)
