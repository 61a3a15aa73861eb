"""Ended runs' curves kept sealed on PostgreSQL: each series of an ended run as one row, its steps, values and times
packed as PostgreSQL sends 8-byte numbers, so reading a whole curve is one row that numpy reads at once instead of
a Python object per value (`get_metric_series([run], [key], max_points=None)`, a training script's history call).

The points stay the store's record; a seal is derived from them. It holds only while its series' summary still has
the count and last step it was sealed at: a point logged after the run ended (a journal replayed late) leaves the
seal stale, and the read packs the points themselves in the same statement. A rewritten step drops the seal
(`PostgresStore._overviews_stale`); `tunedeck store copy` does not copy seals, it seals again at the destination.
"""

import numpy as np
import polars as pl

from core.pg_connection import PG_EPOCH_US, PgConnection
from core.points import POINT_SCHEMA
from core.status import ENDED_VALUES

# A series longer than this stays unsealed (its row would be 24 bytes a point: 2.4 MB here) and is read from its points.
SEALED_MAX_POINTS = 100_000

# steps, then values, then times (microseconds since 2000), each a run of big-endian 8-byte numbers in step order
_PACKED = (
    "string_agg(int8send(m.step), ''::BYTEA ORDER BY m.step) || string_agg(float8send(m.value), ''::BYTEA ORDER BY m.step) "
    "|| string_agg(timestamp_send(m.wall_time), ''::BYTEA ORDER BY m.step)"
)
_SEAL = f"""
    INSERT INTO sealed_curves (run_id, key, count, last_step, points)
    SELECT m.run_id, m.key, count(*), max(m.step), {_PACKED}
    FROM metrics m JOIN metric_summaries s ON s.run_id = m.run_id AND s.key = m.key
    WHERE {{which}} AND s.count <= {SEALED_MAX_POINTS}
    GROUP BY m.run_id, m.key
    ON CONFLICT (run_id, key) DO UPDATE SET count = excluded.count, last_step = excluded.last_step, points = excluded.points
"""
SEAL_RUNS = _SEAL.format(which="m.run_id = ANY(%(runs)s::BIGINT[])")
# Every ended run's series that has no seal, or a stale one: after a copy, and when the table first comes (a migration).
SEAL_ENDED = _SEAL.format(
    which=f"""s.run_id IN (SELECT id FROM runs WHERE status IN ({", ".join(f"'{status}'" for status in ENDED_VALUES)}))
    AND NOT EXISTS (
        SELECT 1 FROM sealed_curves c WHERE c.run_id = s.run_id AND c.key = s.key AND c.count = s.count AND c.last_step = s.last_step
    )"""
)
# One curve: its seal if it still holds, else its points packed the same way here (not run when the seal holds);
# no points, NULL.
ONE_CURVE = f"""
    SELECT coalesce(
        (SELECT c.points FROM sealed_curves c
         JOIN metric_summaries s ON s.run_id = c.run_id AND s.key = c.key AND s.count = c.count AND s.last_step = c.last_step
         WHERE c.run_id = %(run)s AND c.key = %(key)s),
        (SELECT {_PACKED} FROM metrics m WHERE m.run_id = %(run)s AND m.key = %(key)s)
    )
"""
DROP_REWRITTEN = "DELETE FROM sealed_curves WHERE (run_id, key) IN (SELECT DISTINCT run_id, key FROM points)"


def seal(con: PgConnection, run_ids: list[int]) -> None:
    """Seal the runs' series (in the caller's transaction, where the runs end)."""
    con.cursor.execute(SEAL_RUNS, {"runs": run_ids})


def seal_ended(con: PgConnection) -> None:
    con.cursor.execute(SEAL_ENDED)


def one_curve(con: PgConnection, run_id: int, key: str) -> pl.DataFrame:
    """The run's whole series of `key`, in step order, as the store's point frame."""
    (packed,) = con.cursor.execute(ONE_CURVE, {"run": run_id, "key": key}).fetchone()
    return curve_frame(packed or b"", run_id, key)


def curve_frame(packed: bytes, run_id: int, key: str) -> pl.DataFrame:
    n = len(packed) // 24
    numbers = np.frombuffer(packed, ">i8", 3 * n).astype(np.int64)  # to this machine's byte order; floats keep their bits
    return pl.DataFrame(
        [
            pl.Series("run_id", [run_id] * n, dtype=pl.Int64),
            pl.Series("key", [key] * n, dtype=pl.String),
            pl.Series("step", numbers[:n]),
            pl.Series("value", numbers[n : 2 * n].view(np.float64)),
            pl.Series("wall_time", numbers[2 * n :] + PG_EPOCH_US).cast(POINT_SCHEMA["wall_time"]),
        ]
    )
