"""Repeated latency measurement: warm up, then keep every sample so the median and p90 can be reported."""

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    samples_ms: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p90_ms(self) -> float:
        return statistics.quantiles(self.samples_ms, n=10, method="inclusive")[-1]


def measure(operation: Callable[[], object], repeat: int = 15, warmup: int = 2) -> Timing:
    """Warm-ups fill the OS page cache, the store server's DuckDB cache and this process's connection to the
    server, so samples show the steady state."""
    for _ in range(warmup):
        operation()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        operation()
        samples.append((time.perf_counter() - start) * 1000)
    return Timing(tuple(samples))
