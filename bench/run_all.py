"""Run the ingest, query, page and jobs benchmarks and rewrite BENCHMARKS.md with what they measured.

python -m bench.run_all                                 # the full run, 2 to 4 minutes on 2 quiet CPUs
python -m bench.run_all --quick                         # a check that everything runs, in a minute or two

Every benchmark goes through the store server, as production does (its read cache off, so that repeated reads
measure the store), and stops the servers it started.
--quick shrinks every size (any size given as well wins); its figures say nothing about speed, so
its report goes to QUICK_OUTPUT (in the temporary folder) unless --output says where, never BENCHMARKS.md.
Every `## ` section of the output file that this run does not write is kept as it was (`## Peers`,
`## Search` and the others are written by other benchmarks, some by hand).
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
QUICK_OUTPUT = Path(tempfile.gettempdir()) / "tunedeck-bench-quick.md"
QUICK = {  # tiny sizes: every benchmark still runs its whole path, with several flushes and samples
    "points": 200_000,
    "flush_points": 20_000,
    "per_step_points": 4_000,
    "processes": 2,
    "experiments": 50,
    "repeat": 3,
    "page_repeat": 2,
    "short_runs": 2,
    "output": QUICK_OUTPUT,
}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ingest.arguments(parser)
    queries.arguments(parser)
    pages.arguments(parser)
    jobs.arguments(parser)
    parser.set_defaults(processes=4)
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write the report (default BENCHMARKS.md)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check that everything runs")
    if parser.parse_args().quick:
        parser.set_defaults(**QUICK)
    return parser.parse_args()


def main() -> None:
    options = arguments()
    os.environ["TUNEDECK_READ_CACHE_MB"] = "0"  # repeated reads measure the store; `## Serving a team` shows the cache
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
    options.output.write_text(report.keep_other_sections(text, previous))  # the sections other benchmarks write
    print(f"wrote {options.output}")


if __name__ == "__main__":
    main()
