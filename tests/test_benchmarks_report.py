"""Rewriting BENCHMARKS.md with `bench.run_all` keeps what other benchmarks (and people) wrote there."""

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
