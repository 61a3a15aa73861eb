"""Answers the store server gave to reads, kept until the next write.

A dashboard asks the same questions over and over (every viewer of an experiment, every live refresh)
while nothing changes. The store server's process runs every write to the file (`core.database`), so it
knows exactly when an answer goes stale: each commit moves the store's generation on, and an answer is
served only while the generation it was read in is still the current one.
"""

import threading
from collections import OrderedDict
from typing import Any

DEFAULT_MB = 64


class ReadCache:
    """Answers by request, for one generation of the store; the least recently used go first when full."""

    def __init__(self, max_bytes: int = DEFAULT_MB * 2**20):
        self.max_bytes = max_bytes
        self.hits = self.misses = 0
        self._lock = threading.Lock()
        self._answers: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._generation = -1
        self._bytes = 0

    def get(self, request: Any, generation: int) -> Any | None:
        with self._lock:
            self._move_to(generation)
            found = self._answers.get(request) if generation == self._generation else None
            if found is None:
                self.misses += 1
                return None
            self._answers.move_to_end(request)
            self.hits += 1
            return found[0]

    def put(self, request: Any, generation: int, answer: Any, size: int) -> None:
        """Keep an answer read in `generation` (taken before the read began): once a write has committed since,
        the answer may already be stale, and it is dropped."""
        if size > self.max_bytes // 4:
            return
        with self._lock:
            self._move_to(generation)
            if generation != self._generation or request in self._answers:
                return
            self._answers[request] = (answer, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._answers.popitem(last=False)
                self._bytes -= dropped

    def _move_to(self, generation: int) -> None:
        if generation > self._generation:
            self._answers.clear()
            self._bytes = 0
            self._generation = generation
