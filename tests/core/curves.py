"""What a curve read should answer, computed in the tests from every point: the oracle for the stores' bucketing."""

import polars as pl


def power_of_two_read(points: pl.DataFrame, buckets: int) -> set[tuple[str, int, float]]:
    """What a running run's curve read should answer, computed here from every point: buckets of 2^k steps from step
    0 (k the smallest giving at most `buckets`), the lowest and highest point of each."""
    answer = set()
    for (key,), series in points.group_by("key"):
        if series.height <= 2 * buckets:
            answer |= {(key, step, value) for step, value in zip(series["step"], series["value"], strict=True)}
            continue
        shift = next(k for k in range(64) if series["step"].max() >> k < buckets)
        bucketed = series.with_columns(bucket=pl.col("step") // 2**shift)
        for extreme in (pl.col("value").arg_min(), pl.col("value").arg_max()):
            picked = bucketed.group_by("bucket").agg(pl.col("step").get(extreme), pl.col("value").get(extreme))
            answer |= {(key, step, value) for step, value in zip(picked["step"], picked["value"], strict=True)}
    return answer


def as_set(read: pl.DataFrame) -> set[tuple[str, int, float]]:
    return set(zip(read["key"], read["step"], read["value"], strict=True))
