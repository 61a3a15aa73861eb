"""Rewriting BENCHMARKS.md with `bench.run_all` keeps what other benchmarks (and people) wrote there."""

from bench.peers import on_postgres, report
from bench.report import keep_other_sections

PREVIOUS = """# Benchmarks

## Queries
measured last week

## Serving a team
written by hand

## Peers
written by bench.peers
### Notes
kept with it

## Peers on PostgreSQL
written by bench.peers.on_postgres
"""


def test_a_rewrite_replaces_its_own_sections_and_keeps_every_other_one_as_it_was():
    rewritten = keep_other_sections("# Benchmarks\n\n## Queries\nmeasured today\n", PREVIOUS)

    assert "measured today" in rewritten and "measured last week" not in rewritten
    for kept in ("## Serving a team\nwritten by hand", "## Peers\nwritten by bench.peers\n### Notes\nkept with it",
                 "## Peers on PostgreSQL\nwritten by bench.peers.on_postgres"):  # fmt: skip
        assert kept in rewritten
    assert rewritten.count("## Queries") == 1


def test_the_last_runs_profiles_of_slow_pages_go_when_no_page_is_slow():
    previous = PREVIOUS.replace("## Serving a team", "## Where the slow pages spend their time\nexperiments.py: 476 ms\n\n## Serving a team")

    rewritten = keep_other_sections("# Benchmarks\n\n## Pages\nevery page under its target\n", previous)

    assert "476 ms" not in rewritten and "## Serving a team\nwritten by hand" in rewritten


def test_a_peers_rewrite_replaces_its_tables_and_keeps_the_notes_written_by_hand(tmp_path):
    benchmarks = tmp_path / "BENCHMARKS.md"
    benchmarks.write_text(PREVIOUS.replace("on_postgres\n", "on_postgres\n### Notes\nmeasured at 2,000 runs by hand\n"))

    report.rewrite(benchmarks, "## Peers on PostgreSQL\n\nmeasured again\n", on_postgres.HEADING)
    report.rewrite(benchmarks, "## Peers\n\nrun again\n")

    rewritten = benchmarks.read_text()
    assert "written by bench.peers" not in rewritten  # both generated sections replaced
    assert "## Peers\n\nrun again\n\n### Notes\nkept with it" in rewritten
    assert "## Peers on PostgreSQL\n\nmeasured again\n\n### Notes\nmeasured at 2,000 runs by hand" in rewritten
    assert "## Serving a team\nwritten by hand" in rewritten
