"""The Peers table and the `## Peers` section of BENCHMARKS.md, rewritten in place."""

import re
from pathlib import Path

HEADING = "## Peers"
SYSTEMS = ("TuneDeck", "MLflow", "Aim")


def _rows(run: dict) -> list[tuple]:
    """(label, unit, where the figure sits in a result, higher is better, peers' fallback figure, target ratio)."""
    options = run["options"]
    small, large = f"{options['runs']:,} runs", f"{options['large_runs']:,} runs x {options['large_steps']} steps"
    return [
        (f"Ingest {options['runs']} runs x 4 keys x {options['steps']} steps", "points/s", ("points_per_s",), True, None, None),
        ("Store on disk (whole folder)", "MiB", ("bytes",), False, None, 10),
        (f"List with latest metrics, {small} (`list_runs`, public API)", "ms", ("small", "list"), False, None, None),
        (
            f"List with latest metrics, {small} (one SQL query, bench module)",
            "ms",
            ("small", "list_frame"),
            False,
            ("small", "list"),
            None,
        ),
        (f"Filter accuracy > 0.5, order by eval_loss, {small}", "ms", ("small", "filter_order"), False, None, None),
        (f"List with latest metrics, {large} (`list_runs`, public API)", "ms", ("large", "list"), False, None, 50),
        (
            f"List with latest metrics, {large} (one SQL query, bench module)",
            "ms",
            ("large", "list_frame"),
            False,
            ("large", "list"),
            50,
        ),
        (f"Filter accuracy > 0.5, order by eval_loss, {large}", "ms", ("large", "filter_order"), False, None, 50),
        (
            f"History: `loss` of 10 runs ({run['results']['TuneDeck']['history_points']:,} points)",
            "ms",
            ("history_ms",),
            False,
            None,
            50,
        ),
    ]


def _get(result: dict | None, path: tuple, fallback: tuple | None):
    for candidate in (path, fallback):
        value = result
        for part in candidate or ():
            value = value.get(part) if isinstance(value, dict) else None
        if candidate and value is not None:
            return value
    return None


def _fmt(value, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "MiB":
        return f"{value / 2**20:,.1f} MiB"
    if unit == "points/s":
        return f"{value:,.0f}"
    return f"{value:,.1f} ms"


def _ratio(mine, theirs, higher: bool) -> float | None:
    if mine is None or theirs is None or mine == 0:
        return None
    return mine / theirs if higher else theirs / mine


def table_rows(run: dict) -> list[list[str]]:
    results, lines = run["results"], []
    for label, unit, path, higher, fallback, target in _rows(run):
        values = {name: _get(results.get(name), path, fallback if name != "TuneDeck" else None) for name in SYSTEMS}
        ratios = {name: _ratio(values["TuneDeck"], values[name], higher) for name in ("MLflow", "Aim")}
        target = 100 if path == ("points_per_s",) else target
        against = ("MLflow", "Aim") if path == ("points_per_s",) else ("MLflow",)
        verdict = "—"
        if target is not None and all(ratios[name] is not None for name in against):
            verdict = "pass" if all(ratios[name] >= target for name in against) else "fail"
        lines.append(
            [label]
            + [_fmt(values[name], unit) for name in SYSTEMS]
            + [f"{ratios[name]:,.1f}x" if ratios[name] else "—" for name in ("MLflow", "Aim")]
            + [f">= {target}x vs {' and '.join(against)}" if target else "—", verdict]
        )
    return lines


def table(run: dict) -> str:
    header = ["Workload", *SYSTEMS, "TuneDeck vs MLflow", "TuneDeck vs Aim", "Target", "Result"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * 5 + "---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(run)]
    return "\n".join(lines)


def section(run: dict) -> str:
    machine, load, results = run["machine"], run["load"], run["results"]
    profile = results.get("TuneDeck", {}).get("profile", {})
    extra = [
        f"{name}: ingest of the {run['options']['large_runs']:,}-run store took {result['large_ingest_s']:.1f} s"
        + (f", indexing {result['large_index_s']:.1f} s (small store: {result['index_s']:.1f} s)" if "index_s" in result else "")
        for name, result in results.items()
    ]
    return "\n".join(
        [
            HEADING,
            "",
            f"Measured by `{run['command']}` on {run['started']} ({run['seconds']:.0f} s in all). It needs the peers installed "
            "(`pip install -r requirements-bench.txt`, best in a virtual environment with `--system-site-packages`: "
            "mlflow pins pyarrow below 26) and rewrites only this section.",
            "",
            f"Machine: CPUs (nproc) {machine['nproc']}; CPU model {machine['cpu']}; Python {machine['python']}; "
            f"DuckDB {machine['duckdb']}; MLflow {machine['mlflow']}; Aim {machine['aim']}. "
            f"Load average (1 min) {load[0]:.2f} before and {load[1]:.2f} after.",
            "",
            table(run),
            "",
            "Medians of "
            f"{run['options']['repeat']} samples after 1 warm-up."
            + (
                f" Scaled down to keep the run near 6 minutes: the {run['options']['large_runs']:,}-run store has "
                f"{run['options']['large_steps']} steps per series, not 100 (list and filter read each run's last values, "
                "which every system keeps apart from the history; 100 steps would add roughly 1.5 minutes of "
                "ingest each to MLflow and Aim)."
                if run["options"]["large_steps"] != 100
                else ""
            )
            + " Ratios are TuneDeck's speed-up (for size: how many times smaller). "
            "Setup outside the clock: " + "; ".join(extra) + ". "
            "How each is driven: MLflow through `MlflowClient` on `sqlite:///` (`log_batch` of 1,000, `search_runs` with "
            "`filter_string` / `order_by`, `get_metric_history`); Aim through `Run.track`, `Repo.query_runs` (its query "
            "language filters on `run.metrics['accuracy'].last`; ordering is done in Python, as the SDK cannot) and "
            "`Run.get_metric`, after indexing the runs as `aim up` would; TuneDeck through `MetricWriter.log_series`, "
            "`list_runs` and `get_metric_series(max_points=None)`. TuneDeck has no public metric filter, so filter+order "
            "and the frame list are one SQL query each in `bench/peers/tunedeck.py` via `core.db.connect` + `core.sql.frame`. "
            "Every TuneDeck call opens and closes the store, as the app and workers do.",
            "",
            *bounds(run),
            "",
            f"Where one `list_runs` call at {run['options']['large_runs']:,} runs goes (cProfile): "
            f"{profile.get('total_ms', 0):.0f} ms in all, of which opening the file (`duckdb.connect`) "
            f"{profile.get('connect_ms', 0):.0f} ms, Pydantic `model_validate` {profile.get('model_validate_ms', 0):.0f} ms, "
            f"Polars `to_dicts` {profile.get('to_dicts_ms', 0):.0f} ms; a bare read-only open + close of the file "
            f"takes {profile.get('open_close_ms', 0):.1f} ms.",
            "",
            "```",
            profile.get("text", "").strip(),
            "```",
            "",
            *(
                [
                    "TuneDeck ingest profile (the timed part only, a separate fresh store):",
                    "",
                    "```",
                    results["TuneDeck"]["ingest_profile"].strip(),
                    "```",
                    "",
                ]
                if "ingest_profile" in results.get("TuneDeck", {})
                else []
            ),
        ]
    )


def rewrite(path: Path, text: str) -> None:
    """Replace the Peers section (up to the next `## ` heading) or append it; the rest stays as it was."""
    current = path.read_text() if path.exists() else ""
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text + "\n", current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    path.write_text(updated)


def bounds(run: dict) -> list[str]:
    """What caps each ratio, in this run's own numbers."""
    results = run["results"]
    mine, mlflow = results.get("TuneDeck", {}), results.get("MLflow", {})
    profile = mine.get("profile", {})
    floor = profile.get("open_close_ms", 0)
    lines = ["What bounds each figure:", ""]
    if mine.get("flush_ms"):
        flushes = mine["flush_ms"]
        lines.append(
            f"- Ingest: {mine['points']:,} points took {mine.get('flush_ingest_s', mine['ingest_s']) * 1000:.0f} ms"
            f"{' in a separate same-size ingest' if 'flush_ingest_s' in mine else ''}, {sum(flushes):.0f} ms of it in "
            f"{len(flushes)} store write (open the file, insert, update run summaries, commit, close); most of the rest "
            "is `MetricWriter.log_series` building a Polars frame per call (800 calls; `collect` and `dict_to_pydf` in the "
            "ingest profile below). 100x MLflow needs "
            f"{mine['points'] / (100 * mlflow['points_per_s']) * 1000:.0f} ms for the whole workload."
            if mlflow.get("points_per_s")
            else ""
        )
    if floor and mlflow.get("large"):
        need = {name: mlflow["large"][name] / 50 for name in ("list", "filter_order")}
        lines.append(
            f"- List and filter at {run['options']['large_runs']:,} runs: every TuneDeck read opens the DuckDB file and "
            f"closes it again (shared by the app and workers, so no connection stays open); a bare read-only open + close "
            f"costs {floor:.1f} ms. 50x MLflow needs {need['list']:.1f} ms (list) and {need['filter_order']:.1f} ms "
            "(filter), which is at or below that floor before any query runs. `list_runs` adds the Pydantic `Run` per run "
            "(see the profile below); the one-query frame does not."
        )
    if floor and mlflow.get("history_ms"):
        lines.append(
            f"- History: 50x MLflow needs {mlflow['history_ms'] / 50:.1f} ms; TuneDeck's "
            f"{mine.get('history_ms', 0):.1f} ms is the {floor:.1f} ms open plus one query of "
            f"{mine.get('history_points', 0):,} points."
        )
    if mlflow.get("bytes"):
        lines.append(
            f"- Size: {mine['bytes'] / mine['points']:.1f} bytes per point on disk for TuneDeck (DuckDB's columnar, "
            f"compressed file), {mlflow['bytes'] / mlflow['points']:.0f} for MLflow's SQLite rows with their indexes. "
            "Aim's figure is its whole `.aim` folder (RocksDB chunks per run and their logs)."
        )
    return lines
