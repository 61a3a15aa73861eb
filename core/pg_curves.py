"""Ended runs' curves kept sealed on PostgreSQL: each series of a run that ended, as one row, its points packed as
PostgreSQL sends 8-byte numbers (step, value, time; point after point in step order), so reading a whole curve is
one row that numpy reads at once instead of a Python object per value (`get_metric_series([run], [key],
max_points=None)`, a training script's history call).

The points stay the store's record; a seal is derived from them and trusted only while its series' summary has
the count and last step it was sealed with, so a point logged after the end (a journal replayed late) leaves it
stale and the read takes the points. A rewritten step keeps both: there a trigger on `metrics` (migration 8) drops
the seal of every series a DELETE or UPDATE touches, whichever release of TuneDeck wrote it, after locking their
runs, as a run's end does before it seals, so a run ending at that moment seals either before (and its seal is
dropped) or after (and sees the new points). `tunedeck store copy` does not copy seals; it seals at the destination.
"""

import numpy as np
import polars as pl

from core.pg_connection import PgConnection, point_columns, points_cursor
from core.status import ENDED_VALUES

# Series longer than this stay unsealed and are read from their points: sealing costs a run's end ~2.4 s per
# million points (in its transaction, the run locked), and a row of 24 bytes a point.
SEALED_MAX_POINTS = 25_000

_POINT = np.dtype([("step", ">i8"), ("value", ">f8"), ("time", ">i8")])  # time: microseconds since 2000
_PACKED = "string_agg(int8send(m.step) || float8send(m.value) || timestamp_send(m.wall_time), ''::BYTEA ORDER BY m.step)"
# A seal joined to its series' summary holds while the count and last step are the ones it was sealed with.
_HOLDING = """sealed_curves c
    JOIN metric_summaries s ON s.run_id = c.run_id AND s.key = c.key AND s.count = c.count AND s.last_step = c.last_step"""
_SEAL = f"""
    INSERT INTO sealed_curves (run_id, key, count, last_step, points)
    SELECT s.run_id, s.key, p.count, p.last_step, p.points
    FROM metric_summaries s, LATERAL (
        SELECT count(*) AS count, max(m.step) AS last_step, {_PACKED} AS points
        FROM metrics m WHERE m.run_id = s.run_id AND m.key = s.key
    ) p
    WHERE s.run_id = ANY(%(runs)s::BIGINT[]) AND s.count <= {SEALED_MAX_POINTS}
    ON CONFLICT (run_id, key) DO UPDATE SET count = excluded.count, last_step = excluded.last_step, points = excluded.points
"""
SEALED_CURVE = f"SELECT c.points FROM {_HOLDING} WHERE c.run_id = %(run)s AND c.key = %(key)s"
_POINTS = "SELECT step, value, wall_time FROM metrics WHERE run_id = %(run)s AND key = %(key)s ORDER BY step"
# Seals a read would trust whose points are not the series' points now (the integrity check's)
_WRONG_SEALS = f"""
    SELECT c.run_id, c.key FROM {_HOLDING}
    WHERE c.points IS DISTINCT FROM (SELECT {_PACKED} FROM metrics m WHERE m.run_id = c.run_id AND m.key = c.key)
    ORDER BY 1, 2
"""


def seal(con: PgConnection, run_id: int) -> None:
    """Seal a run's series, in the transaction that ends it: its row is locked first (see the module's docstring)."""
    con.cursor.execute("SELECT 1 FROM runs WHERE id = %(run)s FOR UPDATE", {"run": run_id})
    con.cursor.execute(_SEAL, {"runs": [run_id]})


def seal_ended(con: PgConnection) -> None:
    """Seal every ended run's series that has no seal or a stale one (a copy's destination, a store from before
    seals). Their runs are held first, so a rewrite waits for this or this for it."""
    held = con.cursor.execute(
        "SELECT id FROM runs WHERE status = ANY(%(ended)s::TEXT[]) ORDER BY id FOR SHARE", {"ended": ENDED_VALUES}
    ).fetchall()
    con.cursor.execute(_SEAL, {"runs": [run_id for (run_id,) in held]})


def wrong_seals(con: PgConnection) -> list[str]:
    found = con.cursor.execute(_WRONG_SEALS).fetchall()
    return [f"the sealed curve of run {run_id} key {key!r} disagrees with its points" for run_id, key in found]


def one_curve(con: PgConnection, run_id: int, key: str) -> pl.DataFrame:
    """The run's whole series of `key`, in step order: its seal if it holds, else its points (a second statement, so
    a running run's read costs what it did before seals, plus a lookup)."""
    params = {"run": run_id, "key": key}
    sealed = con.cursor.execute(SEALED_CURVE, params).fetchone()
    if sealed is not None:
        points = np.frombuffer(sealed[0], _POINT)
        step, value, time = points["step"], points["value"], points["time"]
    else:
        with points_cursor(con.raw) as cursor:
            found = cursor.execute(_POINTS, params).fetchall()
        step, value, time = zip(*found, strict=True) if found else ((), (), ())
    return point_columns([run_id] * len(step), [key] * len(step), step, value, time)
