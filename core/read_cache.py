"""Answers the store server gave to reads, kept until a write changes what they say.

A dashboard asks the same questions over and over (every viewer of an experiment, every live refresh)
while nothing changes. The store server's process runs every write to the file (`core.database`), so it
knows exactly when an answer goes stale. Most answers are store-wide: each commit moves the store's
generation on, and such an answer is served only while the generation it was read in is still current.
Curves are the costly reads, and they depend on their runs' points alone: such an answer names its runs
and is served until one of those runs' points changes, so a finished experiment's curves stay in memory
while other experiments train.
"""

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

DEFAULT_MB = 64

# (run IDs, generation) -> whether any of those runs' points changed after that generation
PointsChanged = Callable[[Iterable[int], int], bool]


@dataclass(frozen=True)
class _Answer:
    value: Any
    size: int
    generation: int
    runs: tuple[int, ...] | None  # None: store-wide, stale after any commit


class ReadCache:
    """Answers by request; the least recently used go first when full."""

    def __init__(self, max_bytes: int = DEFAULT_MB * 2**20, points_changed: PointsChanged | None = None):
        self.max_bytes = max_bytes
        self.hits = self.misses = 0
        self._points_changed = points_changed
        self._lock = threading.Lock()
        self._answers: OrderedDict[Any, _Answer] = OrderedDict()
        self._bytes = 0
        self._newest = -1  # the newest generation a request has been asked or answered in

    def get(self, request: Any, generation: int) -> Any | None:
        """The answer kept for `request`, if it is still what a read now (in `generation`) would say."""
        with self._lock:
            self._newest = max(self._newest, generation)
            found = self._answers.get(request)
            if found is not None and not self._current(found):
                self._drop(request)
                found = None
            if found is None:
                self.misses += 1
                return None
            self._answers.move_to_end(request)
            self.hits += 1
            return found.value

    def put(self, request: Any, generation: int, value: Any, size: int, runs: Iterable[int] | None = None) -> None:
        """Keep an answer read in `generation` (taken before the read began). If a write has since changed what it
        depends on (any commit; for an answer about `runs`, their points), it may already be stale: it is dropped."""
        if size > self.max_bytes // 4:
            return
        answer = _Answer(value, size, generation, None if runs is None or self._points_changed is None else tuple(runs))
        with self._lock:
            if request in self._answers or not self._current(answer):
                return
            self._answers[request] = answer
            self._bytes += size
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._answers)))

    def _current(self, answer: _Answer) -> bool:
        if answer.runs is None:
            return answer.generation >= self._newest
        return not self._points_changed(answer.runs, answer.generation)

    def _drop(self, request: Any) -> None:
        self._bytes -= self._answers.pop(request).size
