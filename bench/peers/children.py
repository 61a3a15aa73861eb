"""Start a benchmark child process, follow its progress, and read the JSON it leaves behind.

A child reports progress as `@progress DONE OF` lines on its stderr, which goes to a log file the
parent reads while it waits for the child to exit. A file, not a pipe: a store owner the child
starts may inherit the child's stderr and outlive it, and a pipe would then never reach its end.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROGRESS = "@progress"
POLL = 0.1


class TimedOut(Exception):
    """The child ran past its time limit and was killed."""


def report(done: int, of: int) -> None:
    """The child's side: one progress line (a few microseconds; every system's loop pays the same)."""
    sys.stderr.write(f"{PROGRESS} {done} {of}\n")
    sys.stderr.flush()


def environment(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}


def spawn(command: list[str], env: dict[str, str], log: Path, stdin=subprocess.DEVNULL) -> subprocess.Popen:
    """A child in the repository root, its stdout discarded and its stderr in `log`."""
    with log.open("w") as stderr:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdin=stdin, stdout=subprocess.DEVNULL, stderr=stderr, text=True)


def failure(log: Path, lines: int = 30) -> str:
    """The last lines the child wrote, progress lines left out."""
    kept = [line for line in log.read_text(errors="replace").splitlines() if not line.startswith(PROGRESS)]
    return "\n".join(kept[-lines:])


def run(args: list[str], out: Path, env: dict[str, str], progress=None, timeout: float | None = None) -> dict:
    """Run `python -m <args>`; returns the JSON the child wrote to `out`."""
    log = out.with_suffix(".log")
    process, started, read = spawn([sys.executable, "-m", *args], env, log), time.monotonic(), 0
    while process.poll() is None:
        if timeout is not None and time.monotonic() - started > timeout:
            process.kill()
            process.wait()
            raise TimedOut(f"{' '.join(args[:3])} ran past {timeout:.0f} s")
        time.sleep(POLL)
        read = _follow(log, read, progress)
    _follow(log, read, progress)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({process.returncode}):\n{failure(log)}")
    return json.loads(out.read_text())


def _follow(log: Path, read: int, progress) -> int:
    """Show the child's newest progress line; returns how far the log has been read (whole lines only)."""
    with log.open("rb") as file:
        file.seek(read)
        chunk = file.read()
    complete = chunk[: chunk.rfind(b"\n") + 1]
    lines = [line for line in complete.decode(errors="replace").splitlines() if line.startswith(PROGRESS)]
    if lines and progress is not None:
        done, of = lines[-1].split()[1:3]
        progress.step(int(done), int(of))
    return read + len(complete)
