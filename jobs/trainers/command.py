"""The 'command' trainer: run a registered training command as a subprocess and follow it.

The command gets TUNEDECK_RUN_ID, TUNEDECK_OUTPUT_DIR, TUNEDECK_DATASET and TUNEDECK_DATA_DIR in
its environment. It reports through the SDK (core.tracking) or by printing JSON lines:

    {"tunedeck": "metrics", "step": 10, "values": {"loss": 0.71}}
    {"tunedeck": "adapter", "path": "/abs/path/to/adapter", "base_model": "llama-3-8b"}
    {"tunedeck": "samples", "step": 10, "rows": [{"example_id": 1, "input": "...", "prediction": "..."}]}

Other output goes to the run's log. On exit 0 the adapter (the folder it named, else the output
directory when it holds files) is registered; any other exit fails the run with the last output.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from core.artifacts import keep
from core.commands import get_command, placeholders, render_arguments
from core.errors import TuneDeckError
from core.settings import get_settings
from core.training_config import SHARED_DEFAULTS, TrainingConfig
from jobs import process_group
from jobs.processes import stop
from jobs.trainers.base import LogParams, LogSamples, TrainingStopped, TrainResult, ignore_params, ignore_samples

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class CommandFailed(TuneDeckError):
    """The registered command exited with an error."""


class _Follower:
    """Reads the command's output: JSON lines become metrics or the adapter, the rest goes to the log."""

    def __init__(self, log: Callable[[int, dict[str, float]], None], log_samples: LogSamples = ignore_samples):
        self.log = log
        self.log_samples = log_samples
        self.adapter: dict | None = None
        self.last_step = 0
        self.tail: deque[str] = deque(maxlen=5)
        self.error: Exception | None = None

    def follow(self, stream) -> None:
        try:
            for line in stream:
                try:
                    self._handle(line.rstrip("\n"))
                except Exception as error:  # a bad metric line fails the run, with the reason: the first one's
                    self.error = self.error or error
        except Exception as error:  # reading itself failed: the run fails saying so, and the pipe is drained as bytes
            self.error = error  # so the command never blocks on a full pipe
            with contextlib.suppress(Exception):
                while stream.buffer.read(65536):
                    pass

    def _handle(self, line: str) -> None:
        message = _message(line)
        if message is None:
            print(line, flush=True)
            if line.strip():
                self.tail.append(line.strip())
        elif message["tunedeck"] == "metrics":
            self.last_step = int(message["step"])
            self.log(self.last_step, message["values"])
        elif message["tunedeck"] == "adapter":
            self.adapter = message
        elif message["tunedeck"] == "samples":
            self.log_samples(int(message["step"]), message["rows"])


def _message(line: str) -> dict | None:
    if not line.startswith("{"):
        return None
    try:
        message = json.loads(line)
    except json.JSONDecodeError:
        return None
    return message if isinstance(message, dict) and message.get("tunedeck") in ("metrics", "adapter", "samples") else None


def check(config: TrainingConfig) -> None:
    """Before a run is queued, where this process has the commands file its worker reads: its command is registered,
    and every placeholder its arguments use has a value (a run without max_steps for `{max_steps}`, say)."""
    settings = get_settings()
    if config.trainer != "command" or settings.team_mode or not settings.commands_file.is_file():
        return  # in team mode, or with no file here, the worker's own file is the one that counts
    spec = get_command(settings, config.command)
    render_arguments(spec, _context(_settings_of(config), "0", Path("."), "."))


def _settings_of(config: TrainingConfig) -> dict[str, object]:
    """What a command's placeholders can name: the run's settings over the shared defaults."""
    return {**SHARED_DEFAULTS, **config.model_dump(exclude_none=True)}


def _context(settings_used: dict, run_id: str, output_dir: Path, dataset: str | Path) -> dict[str, object]:
    return {
        **settings_used,
        "run_id": run_id,
        "output_dir": str(output_dir),
        "dataset": str(dataset),
        "data_dir": str(get_settings().data_dir),
        "python": sys.executable,  # the worker's own interpreter: "python" on PATH may lack the packages
    }


def train(
    config: TrainingConfig,
    dataset: str | Path,
    output_dir: Path,
    log: Callable[[int, dict[str, float]], None],
    should_stop: Callable[[], bool] = lambda: False,
    models_dir: Path | None = None,
    *,
    log_params: LogParams = ignore_params,
    checkpoint_dir: Path | None = None,
    resume_from: Path | None = None,
    log_samples: LogSamples = ignore_samples,
) -> TrainResult:
    """Runs the command; the settings its placeholders use are logged as params (the others were never used)."""
    settings = get_settings()
    spec = get_command(settings, config.command)
    output_dir.mkdir(parents=True, exist_ok=True)
    settings_used = _settings_of(config)
    arguments = render_arguments(spec, _context(settings_used, os.environ.get("TUNEDECK_RUN_ID", ""), output_dir, dataset))
    log_params({name: settings_used[name] for name in placeholders(spec) if name in settings_used and name != "trainer"})
    env = {**os.environ, **spec.env, "TUNEDECK_OUTPUT_DIR": str(output_dir), "TUNEDECK_DATASET": str(dataset)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    print(f"running command {config.command!r}: {arguments}", flush=True)
    try:
        child = subprocess.Popen(  # in a process group of its own, ended as a whole: see jobs.process_group
            # -P: the command's folder is not on the keeper's path (a `jobs` package of the user's hid ours)
            [sys.executable, "-P", "-m", "jobs.process_group", str(os.getpid()), str(process_group.GRACE), *arguments],
            cwd=spec.working_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",  # a byte that is not UTF-8 becomes � in the log; the reader, and the metrics, go on
        )
    except OSError as error:
        raise CommandFailed(f"command {config.command!r} could not start: {error}") from None
    follower = _Follower(log, log_samples)
    reader = threading.Thread(target=follower.follow, args=(child.stdout,), daemon=True)
    reader.start()
    try:
        code = _wait(child, should_stop)
    finally:
        if child.poll() is None:  # left by an exception: the command must not train on
            stop(child, grace=process_group.GRACE + 10)
    reader.join(timeout=30)
    if code is None:
        raise TrainingStopped(follower.last_step)
    if follower.error is not None:
        raise CommandFailed(f"command {config.command!r} reported a bad metric line: {follower.error}")
    said = "no output besides its metric lines" if follower.last_step else "no output"
    last = follower.tail[-1] if follower.tail else said
    if code == process_group.COULD_NOT_START and last.startswith(process_group.NOT_STARTED):
        raise CommandFailed(f"command {config.command!r} could not start: {last.removeprefix(process_group.NOT_STARTED)}")
    if code != 0:
        raise CommandFailed(f"command {config.command!r} {_ended(code)}: {last}")
    named = Path(spec.working_dir or os.getcwd(), str(follower.adapter["path"])) if follower.adapter else None  # as it saw it
    if named is not None and not named.is_dir():
        raise CommandFailed(f"command {config.command!r} named the adapter folder {named}, which does not exist")
    adapter = keep(named, output_dir) if named is not None else output_dir
    base_model = follower.adapter.get("base_model") if follower.adapter else None
    produced = adapter.is_dir() and any(adapter.iterdir())
    return TrainResult(adapter_dir=adapter if produced else None, steps=follower.last_step, metrics={}, base_model=base_model)


def _ended(code: int) -> str:
    """How the command ended, from its keeper's exit code (128 + N for a death by signal N, as a shell says it)."""
    try:
        name = signal.Signals(code - 128).name if code > 128 else None
    except ValueError:
        name = None
    if name is None:
        return f"exited with code {code}"
    why = " (the system may have run out of memory, or it was killed by hand)" if name == "SIGKILL" else ""
    return f"was killed by signal {code - 128}, {name}{why}"


def _wait(child: subprocess.Popen, should_stop: Callable[[], bool]) -> int | None:
    """The exit code, or None when training was asked to stop (the command is terminated)."""
    while child.poll() is None:
        if should_stop():
            stop(child, grace=process_group.GRACE + 10)  # it ends its group within GRACE: killing it sooner orphans that
            return None
        time.sleep(0.2)
    return child.returncode
