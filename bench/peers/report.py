"""The Peers table and the `## Peers` section of BENCHMARKS.md, rewritten in place."""

import re
from pathlib import Path

HEADING = "## Peers"
SYSTEMS = ("TuneDeck", "MLflow", "Aim")
BEFORE = "TuneDeck before the server"  # the design before the store server, small workload only


def _rows(run: dict) -> list[tuple]:
    """(label, unit, where the figure sits in a result, higher is better, target ratio)."""
    options = run["options"]
    small, large = f"{options['runs']:,} runs", f"{options['large_runs']:,} runs x {options['large_steps']} steps"
    history_points = run["results"]["TuneDeck"]["history_points"]
    return [
        (f"Ingest {options['runs']} runs x 4 keys x {options['steps']} steps", "points/s", ("points_per_s",), True, 100),
        ("Store on disk (whole folder)", "MiB", ("bytes",), False, 10),
        (f"List with latest metrics, {small} (`runs_table`)", "ms", ("small", "list"), False, None),
        (f"List with latest metrics, {small} (`list_runs`, Pydantic models)", "ms", ("small", "list_runs"), False, None),
        (f"Filter accuracy > 0.5, order by eval_loss, {small}", "ms", ("small", "filter_order"), False, None),
        (f"List with latest metrics, {large} (`runs_table`)", "ms", ("large", "list"), False, 50),
        (f"List with latest metrics, {large} (`list_runs`, Pydantic models)", "ms", ("large", "list_runs"), False, None),
        (f"Filter accuracy > 0.5, order by eval_loss, {large}", "ms", ("large", "filter_order"), False, 50),
        (f"History: `loss` of 10 runs ({history_points:,} points)", "ms", ("history_ms",), False, 50),
    ]


def _get(result: dict | None, path: tuple):
    value = result
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


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
    for label, unit, path, higher, target in _rows(run):
        values = {name: _get(results.get(name), path) for name in (*SYSTEMS, BEFORE)}
        ratios = {name: _ratio(values["TuneDeck"], values[name], higher) for name in ("MLflow", "Aim")}
        against = ("MLflow", "Aim") if path == ("points_per_s",) else ("MLflow",)
        verdict = "—"
        if target is not None and all(ratios[name] is not None for name in against):
            verdict = "pass" if all(ratios[name] >= target for name in against) else "fail"
        lines.append(
            [label]
            + [_fmt(values[name], unit) for name in (*SYSTEMS, BEFORE)]
            + [f"{ratios[name]:,.1f}x" if ratios[name] else "—" for name in ("MLflow", "Aim")]
            + [f">= {target}x vs {' and '.join(against)}" if target else "—", verdict]
        )
    return lines


def table(run: dict) -> str:
    header = [
        "Workload",
        *SYSTEMS,
        "TuneDeck before the store server",
        "TuneDeck vs MLflow",
        "TuneDeck vs Aim",
        "Target",
        "Result",
    ]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * 6 + "---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(run)]
    return "\n".join(lines)


def section(run: dict) -> str:
    machine, load, results = run["machine"], run["load"], run["results"]
    profile = results.get("TuneDeck", {}).get("profile", {})
    extra = [
        f"{name}: ingest of the {run['options']['large_runs']:,}-run store took {result['large_ingest_s']:.1f} s"
        + (f", indexing {result['large_index_s']:.1f} s (small store: {result['index_s']:.1f} s)" if "index_s" in result else "")
        for name, result in results.items()
        if "large_ingest_s" in result
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
            f"Load average (1 min) {load[0]:.2f} before and {load[1]:.2f} after"
            + (f", after waiting {run['settled_s']:.0f} s for the machine to quiet down" if "settled_s" in run else "")
            + (
                f"; once every store was built, the disk was synced and the queries waited "
                f"{run['settled_before_queries_s']:.0f} s more for the load to drop."
                if "settled_before_queries_s" in run
                else "."
            ),
            "",
            table(run),
            "",
            f"Medians of {run['options']['repeat']} samples, taken back to back after 2 warm-up calls. The ingests "
            "run one system at a time; the queries once every store is built, each on every system one right after "
            "the other, so the figures compared were taken within seconds of each other."
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
            "`Run.get_metric`, after indexing the runs as `aim up` would; TuneDeck through its public API as production "
            "uses it: `MetricWriter.log_series`, `runs_table` (with `where=['accuracy > 0.5'], order_by='eval_loss'` for "
            "the filter), `list_runs` and `get_metric_series(max_points=None)`, each call going through the store server "
            "that the first call started (setup, outside the clock). The column before the server is the same code with "
            "`server_idle_exit=None` and no server running, so every call opens and closes the file "
            "(`TUNEDECK_STORE_SERVER=0`); it runs the small workload only. TuneDeck's size is taken after its server "
            "has closed the file (as at any idle exit), so the write-ahead log is folded in.",
            "",
            *bounds(run),
            "",
            f"Where one `runs_table` call at {run['options']['large_runs']:,} runs goes (cProfile): "
            f"{profile.get('total_ms', 0):.1f} ms in all, of which the round trips to the store server (send, the server's "
            f"query, receive the Arrow table) {profile.get('server_ms', 0):.1f} ms and the pivot to one column per metric "
            f"(a Polars `group_by`) {profile.get('pivot_ms', 0):.1f} ms. Before the server every call also paid a read-only open + close of the "
            f"file: {profile.get('open_close_ms', 0):.1f} ms on this store.",
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
    """What caps each figure, in this run's own numbers."""
    results = run["results"]
    mine, mlflow, before = results.get("TuneDeck", {}), results.get("MLflow", {}), results.get(BEFORE, {})
    profile = mine.get("profile", {})
    lines = ["What bounds each figure:", ""]
    if mine.get("flush_ms") and mlflow.get("points_per_s"):
        flushes = mine["flush_ms"]
        lines.append(
            f"- Ingest: {mine['points']:,} points took {mine['ingest_s'] * 1000:.0f} ms, {sum(flushes):.0f} ms of it in "
            f"{len(flushes)} store write(s) (send the batch to the server as Arrow, insert, update the run summaries, "
            "commit); the rest is the writer checking and buffering 800 `log_series` calls. 100x MLflow needs "
            f"{mine['points'] / (100 * mlflow['points_per_s']) * 1000:.0f} ms for the whole workload. One writer process "
            "is measured; the issue allows several."
        )
    if mlflow.get("large") and mine.get("large"):
        lines.append(
            f"- List and filter at {run['options']['large_runs']:,} runs: one round trip to the store server, whose "
            "query reads each run's last values from `metric_summaries` (kept up to date by every write, so no metric "
            "points are scanned; one statement, so no transaction around it), then a Polars `group_by` to one column "
            "per metric, the filter and the sort in the caller. `list_runs` is slower because it builds a Pydantic "
            "`Run` with its summaries per run, which the dashboard's run table does not need."
        )
    if mlflow.get("history_ms"):
        lines.append(
            f"- History: one round trip: one query of {mine.get('history_points', 0):,} points on the server (an `IN` "
            "list of bound run IDs, which DuckDB checks against each row group's min/max, so it reads one row group of "
            "122,880 points rather than all of them), the Arrow table back, checked to be in run and step order "
            "already (else sorted in Polars): "
            f"{mine.get('history_ms', 0):.1f} ms against the {mlflow['history_ms'] / 50:.1f} ms that 50x MLflow needs. "
            f"Alone, on a connection held open in one process, that DuckDB query takes {mine.get('history_query_ms', 0):.1f} ms; "
            "the rest is the socket, the server's thread, and the Arrow table's way back. These are warm figures, "
            "as for every system: a call after a pause (another system's call, a user reading the page) costs 1.5 to "
            "2 ms more here, in one process as well, while the CPU caches and DuckDB's threads warm up again."
        )
    if before.get("small") and mine.get("small"):
        lines.append(
            f"- Before the store server the same calls took {before['small']['list']:.1f} ms (list), "
            f"{before['small']['filter_order']:.1f} ms (filter) and {before['history_ms']:.1f} ms (history) at "
            f"{run['options']['runs']:,} runs: each paid the open + close of the file "
            f"({profile.get('open_close_ms', 0):.1f} ms on its own), which the server pays once."
        )
    if mlflow.get("bytes"):
        lines.append(
            f"- Size: {mine['bytes'] / mine['points']:.1f} bytes per point on disk for TuneDeck (DuckDB's columnar, "
            f"compressed file), {mlflow['bytes'] / mlflow['points']:.0f} for MLflow's SQLite rows with their indexes. "
            "Aim's figure is its whole `.aim` folder (RocksDB chunks per run and their logs)."
        )
    return lines
