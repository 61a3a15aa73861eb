"""A trainer log callback for tests: keeps every call to look at afterwards."""


class Recorder:
    """A log callback that keeps every (step, metrics) call."""

    def __init__(self):
        self.calls: list[tuple[int, dict[str, float]]] = []

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        self.calls.append((step, metrics))

    def steps_with(self, key: str) -> list[int]:
        return [step for step, metrics in self.calls if key in metrics]

    def values(self, key: str) -> list[float]:
        return [metrics[key] for _, metrics in self.calls if key in metrics]

    def without_throughput(self) -> list[tuple[int, dict[str, float]]]:
        return [(step, {k: v for k, v in m.items() if k != "samples_per_second"}) for step, m in self.calls]
