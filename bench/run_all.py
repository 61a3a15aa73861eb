"""Run the ingest, query, page and jobs benchmarks and rewrite BENCHMARKS.md with what they measured.

python -m bench.run_all                                                      # the full run, 3 to 4 minutes on 2 CPUs
python -m bench.run_all --points 1000000 --experiments 1000 --short-runs 6 --output /tmp/b.md  # a quick check

Every benchmark goes through the store server, as production does, and stops the servers it started.
The `## Peers` section of the output file is kept as it was: `python -m bench.peers` rewrites it.
"""

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import ingest, jobs, pages, queries, report

OUTPUT = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ingest.arguments(parser)
    queries.arguments(parser)
    pages.arguments(parser)
    jobs.arguments(parser)
    parser.set_defaults(processes=4)
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write the report (default BENCHMARKS.md)")
    return parser.parse_args()


def main() -> None:
    options = arguments()
    started, clock, load_before = datetime.now(UTC), time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tunedeck-bench-") as folder:
        for name in ("ingest", "queries", "pages", "jobs"):
            (Path(folder) / name).mkdir()
        ingested = ingest.run(
            Path(folder) / "ingest", options.points, options.flush_points, options.per_step_points, options.processes
        )
        queried = queries.run(Path(folder) / "queries", options.experiments, options.repeat)
        paged = pages.run(Path(folder) / "pages", options.experiments, options.page_repeat, profile=options.profile)
        worked = jobs.run(Path(folder) / "jobs", options.short_runs)
    command = " ".join(["python -m bench.run_all", *sys.argv[1:]])
    load = (load_before, os.getloadavg()[0])
    seconds = time.perf_counter() - clock
    text = report.render(ingested, queried, paged, worked, command, started, seconds, load)
    previous = options.output.read_text() if options.output.exists() else ""
    options.output.write_text(report.keep_peers(text, previous))  # `## Peers` is bench.peers' to rewrite
    print(f"wrote {options.output}")


if __name__ == "__main__":
    main()
