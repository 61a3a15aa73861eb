"""Where columnar ingest spends its time: cProfile over the logging only, not the setup.

    python -m bench.profile_ingest --points 10000000 --flush-points 100000

DuckDB's own methods are invisible to cProfile, so their time shows as the calling core
function's tottime: `core/db.py:connect` holds begin, commit and close (the checkpoint),
`core/db.py:_open` the open, `core/sql.py:rows` the SQL statements.
"""

import argparse
import cProfile
import pstats
import tempfile
from pathlib import Path

from bench.ingest import FLUSH_POINTS, POINTS, RUNS, log_columnar, make_store, steps_per_series


def profile(folder: Path, points: int, flush_points: int) -> pstats.Stats:
    store, run_ids = make_store(folder, RUNS)
    profiler = cProfile.Profile()
    profiler.runcall(log_columnar, store, run_ids, steps_per_series(points, RUNS), flush_points)
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
