"""Run lifecycles, interleaved run by run across systems, in one fresh process:

    python -m bench.peers.lifecycle OUT RUNS SYSTEM=FOLDER [SYSTEM=FOLDER ...]

Each clock covers one run: start it (with its params), log 10 steps of 4 metrics, leave the block
(which ends the run and stores what it logged). Setup, and 3 warm-up runs per system, come first.
"""

import json
import os
import sys
import time
from pathlib import Path

from bench.peers import systems
from bench.peers.children import report
from bench.peers.workload import LIFECYCLE_STEPS, step_dicts

WARMUP = 3


def main() -> None:
    out, runs, pairs = Path(sys.argv[1]), int(sys.argv[2]), [pair.split("=", 1) for pair in sys.argv[3:]]
    chosen = {}
    for name, folder in pairs:
        system = systems.load(name)
        os.environ.update(system.environment(Path(folder)))
        chosen[name] = (system, system.setup(Path(folder)))
    steps = step_dicts(0, LIFECYCLE_STEPS)
    for system, experiment in chosen.values():
        for _ in range(WARMUP):
            system.one_run(experiment, steps)
    samples = {name: [] for name in chosen}
    order = list(chosen)
    for index in range(runs):
        for name in order[index % len(order) :] + order[: index % len(order)]:  # who goes first rotates
            system, experiment = chosen[name]
            start = time.perf_counter()
            system.one_run(experiment, steps)
            samples[name].append(1000 * (time.perf_counter() - start))
        report(index + 1, runs)
    out.write_text(json.dumps(samples))


if __name__ == "__main__":
    main()
