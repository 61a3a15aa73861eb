"""Long curves kept downsampled beside their points, so a page of 200 long runs reads thousands of rows, not millions.

For each long series of an ended run the embedded store keeps, at each level of LEVELS buckets, the lowest and
highest point of every bucket, bucketed as `get_metric_series` buckets (by the series' own last step). A read of B
buckets, where B divides a level, gets from it the answer of reading every point: each of the level's buckets lies
inside one of the read's (floor(floor(x) / k) = floor(x / k)), so the lowest and highest of the level's points in a
read bucket are that bucket's own. Where several points tie for a bucket's lowest or highest value, which of them
is kept is the one met first, which can differ, as it already can between two reads of the points (DuckDB combines
a scan of several row groups in no fixed order). A fixed tie-break (a (value, step) key) costs 65 % more on every
read of the points, so the values are exact and a tied point's step is not.

An overview holds while the series' summary still has the count and last step it was built from (any new point
changes the count; rewriting a step drops the overview). The store's committer builds them when it is idle
(`Database`'s upkeep); until then a read takes every point, as before. PostgreSQL keeps none.

A running run's series grows with every batch, and buckets spread over its last step would move with it: its reads
bucket by powers of two in steps instead (buckets of 2^k steps from step 0, k the smallest that makes at most the
buckets asked for: between half and all of them). Those buckets never move, and the ones of a finer power nest in
them, so a growing overview of up to FINE buckets stays exact as the series grows: each upkeep pass folds in only the
points logged since the last, building again only the last bucket it had and those after (every new point is past
the series' last step; anything else is a rewrite, which drops the overview; when the series outgrows FINE buckets
they double and are regrouped), and a read of at most FINE buckets takes the overview up to the step it was built
to and the points after it. When the run ends its growing overview goes, and the ended run's levels above are built.
PostgreSQL buckets running runs' curves the same way, from the points.
"""

import polars as pl

from core.sql import frame, rows
from core.status import ENDED_VALUES

TABLES = ("metric_overviews", "overview_points", "growing_overviews", "growing_points")  # derived: never copied, rebuilt
FINE = 1_024  # buckets at most in a running series' overview: a read asks for 500 at most (one full-width curve)
LEVELS = (50, 500)  # buckets per overview level: the experiment page asks for 50 at 200 runs, a full-width panel 500
MIN_POINTS = 2_000  # shorter series are read whole quickly enough; an overview would not be much smaller
BATCH_POINTS = 500_000  # points one upkeep pass reads (~0.1 s here; a longer series goes whole): writes wait no longer


def level_for(buckets: int) -> int | None:
    """The smallest level a read of `buckets` buckets can be answered from, if any."""
    return next((level for level in LEVELS if level % buckets == 0), None)


def curve_buckets(wanted: int) -> int:
    """The most buckets, up to `wanted`, that an overview answers: what a chart should ask for."""
    return max((b for level in LEVELS for b in range(1, level + 1) if level % b == 0 and b <= wanted), default=1)


# The lowest and highest point of each step bucket of each series in `candidates` (run_id, key, step, value,
# wall_time, the series' last_step, over which its $buckets buckets are spread, and its shift: for a running run's
# series, the power of two its buckets span instead, else NULL). The store's curve
# read uses it as is (core.duckdb_store), so an overview is built exactly as a read buckets. Buckets are integer
# arithmetic, so that they nest exactly however large the steps (floating point rounds past 2^53; 128-bit only
# where 64 bits could overflow, as it costs twice as much). Of tied points the first met is kept: overview points
# are written in step order, as a run's points logged in order are stored, so both ways usually keep the earliest.
BUCKETED = """
    WITH b AS (
        SELECT c.run_id, c.key,
               CASE WHEN c.shift IS NOT NULL THEN c.step >> c.shift
                    WHEN c.last_step < 4611686018427387904 // $buckets THEN c.step * $buckets // (c.last_step + 1)
                    ELSE (c.step::HUGEINT * $buckets // (c.last_step::HUGEINT + 1))::BIGINT END AS bucket,
               arg_min(c.step, c.value) AS low_step, min(c.value) AS low, arg_min(c.wall_time, c.value) AS low_time,
               arg_max(c.step, c.value) AS high_step, max(c.value) AS high, arg_max(c.wall_time, c.value) AS high_time
        FROM candidates c
        GROUP BY ALL
    )
    SELECT run_id, key, low_step AS step, low AS value, low_time AS wall_time FROM b
    UNION ALL SELECT run_id, key, high_step, high, high_time FROM b WHERE high_step <> low_step
"""

_DUE = """
    SELECT s.run_id, s.key, s.count, s.last_step
    FROM metric_summaries s
    JOIN runs r ON r.id = s.run_id
    LEFT JOIN metric_overviews o ON o.run_id = s.run_id AND o.key = s.key
    WHERE list_contains($ended, r.status) AND s.count > $least AND ($runs IS NULL OR s.run_id IN (SELECT unnest($runs)))
      AND (o.run_id IS NULL OR o.count <> s.count OR o.last_step <> s.last_step)
    ORDER BY s.run_id, s.key
"""
# One level of the due series' overviews: the finest from the points ($source NULL), each coarser one from the
# finest level ($source its bucket count): exact, as the finest level's buckets nest in its own.
_LEVEL = """
    INSERT INTO overview_points SELECT *, $buckets::INTEGER FROM (
        WITH candidates AS (
            SELECT m.run_id, m.key, m.step, m.value, m.wall_time, due.last_step, NULL::INTEGER AS shift
            FROM metrics m JOIN due ON due.run_id = m.run_id AND due.key = m.key
            WHERE $source IS NULL AND m.run_id BETWEEN $low AND $high
            UNION ALL
            SELECT p.run_id, p.key, p.step, p.value, p.wall_time, due.last_step, NULL
            FROM overview_points p JOIN due ON due.run_id = p.run_id AND due.key = p.key
            WHERE p.level = $source AND p.run_id BETWEEN $low AND $high
        )
        SELECT * FROM (""" + BUCKETED + """) ORDER BY run_id, key, step
    )
"""
# The shift of a running run's buckets: the smallest k with last_step >> k < buckets (the bit length of
# last_step // buckets). Used by the store's curve read, with its own names for the two.
SHIFT = "CASE WHEN {last_step} // {buckets} = 0 THEN 0 ELSE length(bin({last_step} // {buckets})) END"

# Per due series: its shift now, and the first bucket (at that shift) to build again: the one the last step built
# to lies in, the others before it being whole; all of them when the series is new or its shift grew (the buckets
# doubled: they are regrouped).
_GROWING_DUE = """
    SELECT *, CASE WHEN grown_to IS NULL OR shift <> """ + SHIFT.format(last_step="grown_to", buckets="$fine") + """
                   THEN 0 ELSE grown_to >> shift END AS redo_from
    FROM (
    SELECT s.run_id, s.key, s.count, s.last_step, g.last_step AS grown_to, s.count - coalesce(g.count, 0) AS new,
           """ + SHIFT.format(last_step="s.last_step", buckets="$fine") + """ AS shift
    FROM metric_summaries s
    JOIN runs r ON r.id = s.run_id
    LEFT JOIN growing_overviews g ON g.run_id = s.run_id AND g.key = s.key
    WHERE NOT list_contains($ended, r.status) AND s.count > $least AND ($runs IS NULL OR s.run_id IN (SELECT unnest($runs)))
      AND (g.run_id IS NULL OR g.count <> s.count)
    ) ORDER BY run_id, key
"""
# The due series' buckets from redo_from on, anew: the points logged since the last pass (all of them at first), and
# the overview's points in those buckets, bucketed at the series' shift now (never finer than before: they nest).
_GROWN = """
    WITH candidates AS (
        SELECT m.run_id, m.key, m.step, m.value, m.wall_time, due.last_step, due.shift
        FROM metrics m JOIN due ON due.run_id = m.run_id AND due.key = m.key
        WHERE m.run_id BETWEEN $low AND $high AND (due.grown_to IS NULL OR m.step > due.grown_to)
          AND ($floor IS NULL OR m.step > $floor)
        UNION ALL
        SELECT p.run_id, p.key, p.step, p.value, p.wall_time, due.last_step, due.shift
        FROM growing_points p JOIN due ON due.run_id = p.run_id AND due.key = p.key
        WHERE p.run_id BETWEEN $low AND $high AND p.step >> due.shift >= due.redo_from
    )
    SELECT * FROM (""" + BUCKETED.replace("$buckets", "1") + """) ORDER BY run_id, key, step
"""
_REDONE = """
    DELETE FROM growing_points USING due
    WHERE growing_points.run_id = due.run_id AND growing_points.key = due.key AND growing_points.step >> due.shift >= due.redo_from
"""
_GONE = """
    SELECT DISTINCT g.run_id FROM growing_overviews g JOIN runs r ON r.id = g.run_id WHERE list_contains($ended, r.status)
"""
_DROP = (
    "DELETE FROM metric_overviews WHERE (run_id, key) IN (SELECT DISTINCT run_id, key FROM points)",
    "DELETE FROM growing_points WHERE (run_id, key) IN (SELECT DISTINCT run_id, key FROM points)",
    "DELETE FROM growing_overviews WHERE (run_id, key) IN (SELECT DISTINCT run_id, key FROM points)",
)


def build(con, runs: list[int] | None = None, growing: set[int] | None = None) -> bool:
    """One upkeep pass, inside the caller's transaction, over the series of `runs` (None: of every run): running runs'
    growing overviews brought up to date, ended runs' built; each up to BATCH_POINTS points read (a longer series
    goes whole). True when more are due. `growing`, if given, is kept as the runs that have a growing overview."""
    more = _grow(con, runs, set() if growing is None else growing)
    return _build_ended(con, runs) or more


def _grow(con, runs: list[int] | None, growing: set[int]) -> bool:
    if runs is None:  # at open: the overviews an owner before this one built
        growing.update(run_id for (run_id,) in rows(con, "SELECT DISTINCT run_id FROM growing_overviews"))
    gone = rows(con, _GONE, {"ended": ENDED_VALUES})
    if gone:  # their runs ended: the ended runs' levels take over
        ended = {"gone": [run_id for (run_id,) in gone]}
        rows(con, "DELETE FROM growing_points WHERE list_contains($gone, run_id)", ended)
        rows(con, "DELETE FROM growing_overviews WHERE list_contains($gone, run_id)", ended)
        growing.difference_update(ended["gone"])
    due = frame(con, _GROWING_DUE, {"ended": ENDED_VALUES, "least": MIN_POINTS, "runs": runs, "fine": FINE})
    if due.is_empty():
        return False
    taken = due.filter(pl.col("new").cum_sum().shift(1, fill_value=0) < BATCH_POINTS)
    con.register("due", taken)  # left registered if a statement fails: the transaction is over, the next pass replaces it
    # The least step already folded in, as a value: DuckDB then skips the row groups of older points.
    floor = taken["grown_to"].min() if taken["grown_to"].null_count() == 0 else None
    grown = frame(con, _GROWN, {"low": taken["run_id"].min(), "high": taken["run_id"].max(), "floor": floor})
    rows(con, _REDONE)
    rows(con, "DELETE FROM growing_overviews WHERE (run_id, key) IN (SELECT run_id, key FROM due)")
    con.register("grown", grown)
    rows(con, "INSERT INTO growing_points SELECT run_id, key, step, value, wall_time FROM grown")
    rows(con, "INSERT INTO growing_overviews SELECT run_id, key, count, last_step FROM due")
    con.unregister("grown")
    con.unregister("due")
    growing.update(taken["run_id"].to_list())
    return taken.height < due.height


def _build_ended(con, runs: list[int] | None) -> bool:
    due = frame(con, _DUE, {"ended": ENDED_VALUES, "least": MIN_POINTS, "runs": runs})
    if due.is_empty():
        return False
    taken = due.filter(pl.col("count").cum_sum().shift(1, fill_value=0) < BATCH_POINTS)
    con.register("due", taken)  # left registered if a statement fails: the transaction is over, the next pass replaces it
    rows(con, "DELETE FROM overview_points WHERE (run_id, key) IN (SELECT run_id, key FROM due)")
    rows(con, "DELETE FROM metric_overviews WHERE (run_id, key) IN (SELECT run_id, key FROM due)")
    finest, *coarser = sorted(LEVELS, reverse=True)
    span = {"low": taken["run_id"].min(), "high": taken["run_id"].max()}
    con.execute(_LEVEL, {"buckets": finest, "source": None, **span})
    for level in coarser:
        con.execute(_LEVEL, {"buckets": level, "source": finest, **span})
    rows(con, "INSERT INTO metric_overviews SELECT run_id, key, count, last_step FROM due")
    con.unregister("due")
    return taken.height < due.height


def drop(con) -> None:
    """Forget the overviews of the series in the registered `points` (run_id, key): their steps were rewritten."""
    for statement in _DROP:
        rows(con, statement)
