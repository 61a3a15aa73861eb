"""Several processes logging at once through `MetricWriter.log_series`, each to its own runs (TuneDeck only).

The parent creates the experiment and every run first (not timed) and starts the writers; each
writer imports, opens the store and builds its values, says it is ready (a file), and waits. The clock
starts when the parent tells them all to go and stops when the last writer has closed its writer
(every point stored); then the runs' point counts are read back, and every shortfall is an error.

    python -m bench.peers.parallel FOLDER STEPS OUT RUN_ID,RUN_ID,...   # one writer (the parent runs it)
"""

import json
import subprocess
import sys
import time
from pathlib import Path

from bench.peers import children, tunedeck
from bench.peers.workload import KEYS, PARAMS, curves


def writer() -> None:
    from core import open_store
    from core.writer import MetricWriter

    folder, steps, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    run_ids = [int(run_id) for run_id in sys.argv[4].split(",")]
    store, series = open_store(folder), [curves(index, steps) for index in range(len(run_ids))]
    out.with_suffix(".ready").touch()
    sys.stdin.readline()
    start, error = time.monotonic(), None
    try:
        with MetricWriter(store) as metrics:
            for run_id, values in zip(run_ids, series, strict=True):
                for key in KEYS:
                    metrics.log_series(run_id, key, range(steps), values[key])
    except Exception as failure:  # noqa: BLE001 - counted and reported, not raised: the others go on
        error = f"{type(failure).__name__}: {failure}"
    out.write_text(json.dumps({"start": start, "end": time.monotonic(), "error": error}))


def sample(folder: Path, processes: int, runs: int, steps: int) -> dict:
    """One sample in a fresh folder: total points per second from the go to the last writer's close, and errors."""
    from core import open_store

    folder.mkdir(parents=True)
    env = children.environment(tunedeck.environment(folder))
    experiment = tunedeck.setup(folder)
    store = open_store(folder)
    groups = [[store.create_run(experiment, PARAMS) for _ in range(runs)] for _ in range(processes)]
    for run_id in (run_id for group in groups for run_id in group):
        store.mark_running(run_id, worker="bench")
    outs = [folder / f"writer-{n}.json" for n in range(processes)]
    writers = [
        children.spawn(
            [sys.executable, "-m", "bench.peers.parallel", str(folder), str(steps), str(out), ",".join(map(str, group))],
            env,
            out.with_suffix(".log"),
            stdin=subprocess.PIPE,
        )  # fmt: skip
        for out, group in zip(outs, groups, strict=True)
    ]
    while not all(
        out.with_suffix(".ready").exists() or process.poll() is not None for out, process in zip(outs, writers, strict=True)
    ):
        time.sleep(0.05)
    go = time.monotonic()
    for process in writers:
        if process.poll() is None:
            process.stdin.write("go\n")
            process.stdin.close()
    errors = [
        children.failure(out.with_suffix(".log")) for out, process in zip(outs, writers, strict=True) if process.wait() != 0
    ]
    results = [json.loads(out.read_text()) for out in outs if out.exists()]
    seconds = max(result["end"] for result in results) - go if results else float("nan")
    errors += [result["error"] for result in results if result["error"]]
    counts = tunedeck.point_counts(store, experiment)
    errors += [f"a run holds {count} points, not {len(KEYS) * steps}" for count in counts if count != len(KEYS) * steps]
    points = processes * runs * steps * len(KEYS)
    return {"seconds": seconds, "points": points, "points_per_s": points / seconds, "errors": errors}


if __name__ == "__main__":
    writer()
