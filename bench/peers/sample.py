"""One ingest sample in a fresh process, as a training script runs:

    python -m bench.peers.sample SYSTEM MODE FOLDER RUNS STEPS OUT [--profile]

Before the clock: imports, the store and its experiment (`setup`), the values to log. The clock
covers the whole of MODE's call: `user` creates, logs and completes every run through the SDK;
`bulk` (TuneDeck only) creates the runs, logs whole series with `log_series` and completes them.
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import time
from pathlib import Path

from bench.peers import systems
from bench.peers.children import report
from bench.peers.workload import KEYS, curves, step_dicts


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("system", "mode", "folder"):
        parser.add_argument(name)
    parser.add_argument("runs", type=int)
    parser.add_argument("steps", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--profile", action="store_true", help="cProfile the clocked call (this process only)")
    options = parser.parse_args()
    system, folder = systems.load(options.system), Path(options.folder)
    os.environ.update(system.environment(folder))
    experiment = system.setup(folder)
    if options.mode == "user":
        call, inputs = system.user_path, [step_dicts(index, options.steps) for index in range(options.runs)]
    else:
        call, inputs = system.bulk, [curves(index, options.steps) for index in range(options.runs)]
    profiler = cProfile.Profile() if options.profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    run_ids = call(folder, experiment, inputs, lambda done: report(done, options.runs))
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - start
    result = {
        "seconds": seconds,
        "points": options.runs * options.steps * len(KEYS),
        "experiment": experiment,
        "run_ids": run_ids,
    }
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
        result["profile"] = text.getvalue()
    options.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
