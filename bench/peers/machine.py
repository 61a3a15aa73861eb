"""The machine a figure was taken on, and how busy the rest of it was while a sample ran."""

import os
import platform
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def describe() -> dict:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line),
        "?",
    )
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "python": platform.python_version()}


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, CPU ticks used so far, command line) for every process we may read."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # it exited while we looked
        fields = stat.rsplit(")", 1)[1].split()
        found[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]), cmdline)
    return found


def _others(marker: str) -> dict[int, int]:
    """CPU ticks of every process that is not this benchmark (this process, its children, its stores' owners)."""
    processes, ours = _processes(), {os.getpid()}
    for pid, (_, _, cmdline) in processes.items():
        if marker in cmdline or "bench.peers" in cmdline:
            ours.add(pid)
    changed = True
    while changed:  # descendants of ours are ours
        before = len(ours)
        ours |= {pid for pid, (parent, _, _) in processes.items() if parent in ours}
        changed = len(ours) != before
    return {pid: ticks for pid, (_, ticks, _) in processes.items() if pid not in ours}


class LoadMeter:
    """Load average at both ends of a sample, and the CPUs other processes used meanwhile (on average)."""

    def __init__(self, marker: str):
        self.marker = marker
        self.load = os.getloadavg()[0]
        self.started = time.monotonic()
        self.ticks = _others(marker)

    def read(self) -> dict:
        ticks = _others(self.marker)
        used = sum(max(0, now - self.ticks.get(pid, 0)) for pid, now in ticks.items()) / TICKS
        seconds = max(1e-9, time.monotonic() - self.started)
        return {"load_start": self.load, "load_end": os.getloadavg()[0], "others_cpus": used / seconds}
