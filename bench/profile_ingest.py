"""Where columnar ingest spends its time: cProfile over the logging only, not the setup.

    python -m bench.profile_ingest --points 10000000 --flush-points 100000

The store is reached as in production and in bench.ingest: every flush is one Arrow Flight
request to the store server, a separate process that cProfile does not see. So the server's
work (inserting the points, merging the summaries, committing) shows as this process waiting
for the answer: own time in `core/remote.py` `send`, under `_put` (one per flush; it streams the
batch as Arrow record batches, then reads the answer). The rest is this process's own:
checking and journaling each call (`core/writer.py` `log_series`, `core/journal.py`
`append_series`, `posix.write`) and building the batches (`core/writer.py` `frame`, `to_arrow`).
"""

import argparse
import cProfile
import pstats
import tempfile
from pathlib import Path

from bench.ingest import FLUSH_POINTS, POINTS, RUNS, log_columnar, make_store, steps_per_series
from bench.seed import require_server, stop_server


def profile(folder: Path, points: int, flush_points: int) -> pstats.Stats:
    store, run_ids = make_store(folder, RUNS)
    try:
        require_server(store.path, "profile_ingest")
        profiler = cProfile.Profile()
        profiler.runcall(log_columnar, store, run_ids, steps_per_series(points, RUNS), flush_points)
    finally:
        stop_server(store.path)
    return pstats.Stats(profiler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=POINTS)
    parser.add_argument("--flush-points", type=int, default=FLUSH_POINTS)
    parser.add_argument("--top", type=int, default=15)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tunedeck-profile-") as folder:
        stats = profile(Path(folder), options.points, options.flush_points)
    stats.sort_stats("tottime").print_stats(options.top)


if __name__ == "__main__":
    main()
