"""Each run's stdout/stderr goes to a file under the worker's data directory and, from there, into the store
(`LogFollower`), so the app reads it back from any machine (`run_log`)."""

import codecs
from pathlib import Path

from core.errors import TuneDeckError
from core.settings import Settings
from core.store import TrackingStore


def log_path(settings: Settings, run_id: int) -> Path:
    return settings.logs_dir / f"run-{int(run_id)}.log"


def read_log(settings: Settings, run_id: int, tail_lines: int | None = 200) -> str:
    """The last tail_lines lines of a run's log ('' before the run has started)."""
    path = log_path(settings, run_id)
    if not path.exists():
        return ""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if tail_lines is not None:
        lines = lines[-tail_lines:]
    return "\n".join(lines)


def search_log(text: str, query: str, limit: int = 200) -> tuple[str, int]:
    """The last `limit` lines containing `query` (case-insensitive; all lines when it is blank), and how many matched."""
    lines = text.splitlines()
    if query.strip():
        needle = query.strip().lower()
        lines = [line for line in lines if needle in line.lower()]
    return "\n".join(lines[-limit:]), len(lines)


def run_log(store: TrackingStore, settings: Settings, run_id: int, tail_lines: int | None = 200) -> str:
    """A run's log from the store, or from this machine's file for a run trained before logs went into the store."""
    return store.read_log(run_id, tail_lines) or read_log(settings, run_id, tail_lines)


class LogFollower:
    """Sends what a training process has added to its log file since the last call into the store."""

    def __init__(self, store: TrackingStore, run_id: int, path: Path):
        self.store, self.run_id, self.path = store, run_id, path
        self._offset = 0
        self._pending = b""  # the start of a character split across reads

    def send(self, final: bool = False) -> None:
        try:
            with self.path.open("rb") as file:
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = decoder.decode(self._pending + data, final=final)
        if text:
            try:
                self.store.append_log(self.run_id, text)
            except TuneDeckError:
                return  # a busy store: the same bytes go with the next call
        self._pending = decoder.getstate()[0]
        self._offset += len(data)
