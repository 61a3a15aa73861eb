"""Each run's stdout/stderr lives in a file under the data directory; this reads it back."""

from pathlib import Path

from core.settings import Settings


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
