"""A one-line progress bar on stderr: tasks done of all, the current task, its runs, time elapsed."""

import sys
import time

WIDTH = 24


class Progress:
    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.done, self.stream = total, 0, stream
        self.label, self.inner = "", ""
        self.started = time.monotonic()
        self.drawn = 0.0
        self.tty = stream.isatty()

    def start(self, label: str) -> None:
        self.label, self.inner = label, ""
        self._draw(force=True)

    def step(self, done: int, of: int) -> None:
        """Progress inside the current task (runs of a sample, say)."""
        self.inner = f"{done}/{of}"
        self._draw()

    def advance(self, note: str = "") -> None:
        self.done += 1
        self.inner = note
        self._draw(force=True)

    def message(self, text: str) -> None:
        """A line of its own above the bar (a result worth seeing before the end)."""
        self.stream.write(("\r\033[K" if self.tty else "") + text + "\n")
        self._draw(force=True)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and (not self.tty or now - self.drawn < 0.25):
            return
        self.drawn = now
        filled = WIDTH * self.done // max(1, self.total)
        elapsed = int(now - self.started)
        line = (
            f"[{'#' * filled}{'.' * (WIDTH - filled)}] {self.done}/{self.total} {self.label}"
            f"{' ' + self.inner if self.inner else ''} | {elapsed // 60}m{elapsed % 60:02d}s"
        )
        self.stream.write(f"\r\033[K{line}" if self.tty else line + "\n")
        self.stream.flush()
