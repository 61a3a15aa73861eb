"""A training's CPU, memory and GPU use, sampled every few seconds and logged as `system/*` metrics.

Charts leave these out by default (`is_system_metric`); the run page shows them on request.
GPU figures come from `nvidia-smi` when it is on the PATH, so they need no extra package.
The step of a sample is its number (0, 1, 2, ...), as MLflow does: steps only ever grow, so the
store appends them, and a wall-time axis lines them up with the training's curves.
"""

import os
import shutil
import subprocess
import threading
from collections.abc import Callable

import psutil

PREFIX = "system/"
GPU_QUERY = ["--query-gpu=index,utilization.gpu,memory.used", "--format=csv,noheader,nounits"]


def is_system_metric(key: str) -> bool:
    return key.startswith(PREFIX)


class SystemSampler:
    """Logs `sample()` every `interval` seconds from a daemon thread, and once more when the block ends."""

    def __init__(self, log: Callable[[int, dict[str, float]], None], interval: float):
        self.log = log
        self.interval = interval
        self.samples = 0
        self._process = psutil.Process()
        self._seen: dict[int, psutil.Process] = {}  # cpu_percent counts from an object's previous call
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="system-metrics", daemon=True)

    def __enter__(self) -> "SystemSampler":
        if self.interval > 0:
            self.sample()  # primes the CPU counters; the first figures are read one interval later
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if self.interval > 0:
            self._log_sample()  # a closing sample, so a run shorter than one interval has figures too

    def _log_sample(self) -> None:
        try:
            self.log(self.samples, self.sample())
            self.samples += 1
        except Exception as error:  # a failed sample must never fail the training
            print(f"system metrics: {type(error).__name__}: {error}", flush=True)

    def sample(self) -> dict[str, float]:
        """CPU % (100 = one core) and resident memory of this process and its children, plus GPU use."""
        cpu, rss = 0.0, 0
        for process in self._processes():
            try:
                cpu += process.cpu_percent(None)
                rss += process.memory_info().rss
            except psutil.Error:  # a child that just exited
                continue
        values = {f"{PREFIX}cpu_percent": cpu, f"{PREFIX}rss_mb": rss / 2**20}
        return values | {f"{PREFIX}memory_percent": psutil.virtual_memory().percent} | gpu_usage()

    def _processes(self) -> list[psutil.Process]:
        try:
            current = [self._process, *self._process.children(recursive=True)]
        except psutil.Error:
            current = [self._process]
        self._seen = {process.pid: self._seen.get(process.pid, process) for process in current}
        return list(self._seen.values())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._log_sample()


def gpu_usage() -> dict[str, float]:
    """Utilisation % and memory used (MB) of each visible NVIDIA GPU; empty without nvidia-smi."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return {}
    try:
        output = subprocess.run([tool, *GPU_QUERY], capture_output=True, text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return parse_gpu_usage(output, os.environ.get("CUDA_VISIBLE_DEVICES"))


def parse_gpu_usage(output: str, visible: str | None = None) -> dict[str, float]:
    """nvidia-smi's CSV lines as metrics; only the GPUs CUDA_VISIBLE_DEVICES names, when it names indices."""
    wanted = {part.strip() for part in visible.split(",")} if visible and visible.replace(",", "").strip().isdigit() else None
    values = {}
    for line in output.strip().splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 3 or (wanted is not None and parts[0] not in wanted):
            continue
        try:
            utilization, memory = float(parts[1]), float(parts[2])
        except ValueError:  # "[N/A]" on some boards
            continue
        values |= {f"{PREFIX}gpu{parts[0]}_utilization": utilization, f"{PREFIX}gpu{parts[0]}_memory_mb": memory}
    return values
