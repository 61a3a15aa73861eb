"""How entities look on screen: display frames, labels and the parsing of what users type.

Pages call these and draw the result, so every formatting rule is written (and tested) once.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from core.entities import Adapter, AdapterAlias, Experiment, ExperimentPage, MetricAggregate, Run, RunComparison
from core.errors import ValidationError, quoted
from core.filters import EXPERIMENT_SORTS
from core.groups import short
from core.status import RunStatus, is_silent
from core.system_metrics import is_system_metric

STATUS_COLOURS = {
    "created": "gray",
    "queued": "gray",
    "running": "blue",
    "completed": "green",
    "failed": "red",
    "cancelled": "orange",
}
SUMMARY_KEYS = ("loss", "eval_loss", "eval_accuracy")
CONFIG_COLUMNS = ("learning_rate", "epochs", "max_steps", "batch_size", "lora_rank", "lora_alpha", "lora_dropout", "seed")


DIVERGED = "diverged"
TAG_SEPARATOR = " · "
# Status tags in tables: a run's status, then what else is true of it ("completed · diverged").
STATUS_TAG_COLOURS = {**STATUS_COLOURS, DIVERGED: "red", "deleted": "gray"}


FOLD_AT = 200  # characters of a long text a table cell shows before "…"; the full text is one click away


def each(column: pl.Series, function: Callable, dtype: pl.DataType) -> pl.Series:
    """`function` of each non-null value, called in this thread. Not Polars' `map_elements`: its pool threads wait for
    the interpreter's lock, which another page's `to_pandas()` holds while it waits for the same pool, and the
    server froze for every tab (Polars 2.1)."""
    return pl.Series(column.name, [None if value is None else function(value) for value in column.to_list()], dtype=dtype)


def fold(text: str | None, width: int = FOLD_AT) -> str | None:
    """A long text cut to `width` characters with an ellipsis: a table cell's, or a pasted page quoted in a message."""
    if text is None or len(text) <= width:
        return text
    return text[: width - 1] + "…"


def plural(count: int, word: str, many: str | None = None) -> str:
    """'1 experiment', '2 experiments', '1,000 runs'."""
    return f"{count:,} {word if count == 1 else many or word + 's'}"


def middle_cut(text: str, limit: int) -> str:
    """A long name keeping its start and end ('lora-r64-al…rmup500-bs32'): sweep runs share a prefix and differ at
    the end, which a column or a legend cut off."""
    if len(text) <= limit:
        return text
    half = (limit - 1) // 2
    return f"{text[:half]}…{text[-(limit - 1 - half):]}"


def run_state(run: Run, diverged: bool = False) -> str:
    """A run's status as a table shows it: 'completed', or 'completed · diverged'."""
    return f"{run.status.value}{TAG_SEPARATOR}{DIVERGED}" if diverged else run.status.value


def escape_markdown(text: str) -> str:
    """User text shown through Markdown renders as typed: no emphasis, links or HTML, and no Streamlit directive or
    shortcode (`:red[...]`, `:material/delete:`, `:smile:`): those are read after escapes are, so a zero-width space
    after a colon that could open one is what keeps them text. Only there: after every colon ("RuntimeError: CUDA
    out of memory") it went along with every error a user copied."""
    return re.sub(r":(?=[\w+\\-])", ":\u200b", re.sub(r"([\\`*_{}\[\]()<>#+\-.!|~$])", r"\\\1", text))


def escape_outside_code(text: str) -> str:
    """Our message with `code` spans (the search's messages quote what was typed in them) kept as code, the rest
    escaped: a code span shows its text as typed, and a backtick typed inside one only moves which parts are escaped."""
    return "".join(part if index % 2 else escape_markdown(part) for index, part in enumerate(re.split(r"(`[^`]*`)", text)))


_UNSAFE_LINK = re.compile(r"\]\(\s*<?\s*(?:javascript|vbscript|data|file):", re.IGNORECASE)


_CODE = re.compile(r"^(```|~~~).*?(?:^\1[ \t]*$|\Z)|(`+)[^`].*?\2(?!`)", re.S | re.M)  # fenced blocks, inline spans


def safe_markdown(text: str) -> str:
    """A user's note as Markdown with no HTML in it: every `<` outside code becomes `&lt;` (shown as typed, never a
    tag; inside code it is text already, and an entity there would show as `&lt;`), and links to script or data URLs
    lose their target."""
    parts, position = [], 0
    for code in _CODE.finditer(text):
        parts += [text[position : code.start()].replace("<", "&lt;"), code.group(0)]
        position = code.end()
    parts.append(text[position:].replace("<", "&lt;"))
    return _UNSAFE_LINK.sub("](#", "".join(parts))


def tags_label(tags: dict[str, str]) -> str:
    """{'base': 'llama', 'seed': '3'} -> 'base=llama, seed=3'."""
    return ", ".join(f"{key}={value}" for key, value in sorted(tags.items()))


def format_value(value: float | None) -> str:
    """Four significant digits (0.3325, 6.667e-05); from 10,000 to a quadrillion whole and grouped (56,420, not
    5.642e+04 beside a plain 4887)."""
    if value is None or value != value:  # None, or NaN where a table has no value
        return "–"
    if 1e4 <= abs(value) < 1e15:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def format_duration(start: datetime | None, end: datetime | None, now: datetime | None = None) -> str:
    if start is None:
        return "–"
    return format_seconds(((end or now or start) - start).total_seconds())


def format_seconds(seconds: float) -> str:
    """'45s', '3m 05s', '2h 10m'."""
    minutes, seconds = divmod(max(int(seconds), 0), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def format_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


@dataclass(frozen=True)
class Progress:
    """How far a run has got: its latest step, the step it stops at (when known), time spent and left (for a queued
    run, `elapsed` is how long it has waited)."""

    step: int
    total: int | None
    elapsed: float
    eta: float | None
    ended: bool = False
    queued: bool = False
    never_started: bool = False  # ended before a worker took it (cancelled while queued)

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.step / self.total) if self.total else None

    def label(self) -> str:
        if self.never_started:
            return "ended before it started: no worker took it"
        if self.queued:
            planned = f" · {self.total:,} steps planned" if self.total else ""
            return f"queued for {_seconds(self.elapsed)}, waiting for a worker{planned}"
        of = f"step {self.step:,} of {self.total:,}" if self.total else f"step {self.step:,}"
        eta = f" · about {_seconds(self.eta)} left" if self.eta is not None else ""
        if self.ended:
            return f"{of} · took {_seconds(self.elapsed)}"
        return f"{of} · {_seconds(self.elapsed)} elapsed{eta}"


def run_progress(run: Run, now: datetime) -> Progress:
    """Progress from the run's metric summaries and config: the total is the `total_steps` a trainer reported, else
    `max_steps`, else the step count implied by `epochs` and a logged `epoch` metric; a finished run's total is its
    last step."""
    step = max((summary.last_step for summary in run.metrics.values()), default=0)
    total = run.config.get("total_steps") or run.config.get("max_steps")  # what the trainer reported it will take
    epochs, epoch = run.config.get("epochs"), run.metrics.get("epoch")
    if not total and epochs and epoch and epoch.last > 0:
        total = round(epoch.last_step * epochs / epoch.last)
    if run.status.is_terminal and run.status == "completed":
        total = step
    if run.status == "queued":
        return Progress(step=0, total=total or None, elapsed=max(0.0, (now - run.created_at).total_seconds()), eta=None, queued=True)
    elapsed = max(0.0, ((run.ended_at or now) - run.started_at).total_seconds()) if run.started_at else 0.0
    eta = None
    if total and 0 < step < total and not run.status.is_terminal:
        eta = elapsed * (total - step) / step
    never_started = run.status.is_terminal and run.started_at is None
    return Progress(
        step=step, total=total or None, elapsed=elapsed, eta=eta, ended=run.ended_at is not None, never_started=never_started
    )


SETTLING_SECONDS = 15.0  # a cancelled run's training stops at its worker's next look (seconds), logging until then


def still_changing(run: Run, now: datetime) -> bool:
    """Whether a run's page keeps refreshing: while it is queued or running, and for a few seconds after it ended, while
    a cancelled training may still send its last points and output."""
    ended = run.ended_at is not None and (now - run.ended_at).total_seconds() < SETTLING_SECONDS
    return run.status.is_active or ended


def _seconds(seconds: float) -> str:
    start = datetime(2000, 1, 1)
    return format_duration(start, start + timedelta(seconds=seconds))


def latest_metrics(run: Run) -> list[tuple[str, str, str]]:
    """(key, last value, 'at step N') for each metric the run logged, losses and scores first."""
    ordered = sorted(run.metrics.values(), key=lambda m: (m.key not in SUMMARY_KEYS and m.key != "loss", m.key))
    return [(m.key, format_value(m.last), f"step {m.last_step:,}") for m in ordered]


def log_caption(query: str, matched: int, limit: int) -> str:
    """What the run page says above the log lines it shows, as Markdown: how many matched the search (shortened,
    as typed), or how many there are."""
    asked = escape_markdown(query.strip() if len(query.strip()) <= 60 else query.strip()[:57] + "...")
    if asked and not matched:
        return f"No line matches '{asked}'."
    if asked:
        return f"{plural(matched, 'line')} {'matches' if matched == 1 else 'match'} '{asked}'; showing the last {min(matched, limit):,}."
    return f"Showing the last {min(matched, limit):,} of {plural(matched, 'line')}."


LATEST_TILES = 10  # the run page's tiles; a run's other metrics are a table below them


def latest_table(latest: list[tuple[str, str, str]]) -> pl.DataFrame:
    """`latest_metrics` as a table: per-layer metrics come by the thousand, too many for a tile each."""
    return pl.DataFrame(latest, schema=["metric", "latest", "at"], orient="row")


def best_primary_label(experiment: Experiment) -> str:
    best = experiment.best_primary
    return f"{best.key} {format_value(best.value)}" if best else "–"


def dataset_shown(reference: str, here: Path | None = None) -> str:
    """A dataset file as the list shows it: relative to the folder the app runs in where it lies inside it (the form
    stores the full path, whose file name a narrow column cut off); any other reference as stored."""
    path = Path(reference)
    try:
        return str(path.relative_to(here or Path.cwd())) if path.is_absolute() else reference
    except ValueError:
        return reference


def experiments_frame(page: ExperimentPage) -> pl.DataFrame:
    """One row per experiment; a row is opened by selecting it (the id column says which)."""
    tags = {"tags": [tags_label(e.tags) for e in page.items]} if any(e.tags for e in page.items) else {}
    return pl.DataFrame(
        {
            "name": [e.name for e in page.items],
            "status": [e.status.value + (f"{TAG_SEPARATOR}deleted" if e.is_deleted else "") for e in page.items],
            "runs": [e.run_count for e in page.items],
            "best": [best_primary_label(e) for e in page.items],
            **tags,
            "dataset": [dataset_shown(e.dataset) for e in page.items],
            "created": [e.created_at for e in page.items],
            "updated": [e.updated_at for e in page.items],
            "id": [e.id for e in page.items],
        },
        schema_overrides={"created": pl.Datetime("us"), "updated": pl.Datetime("us"), "runs": pl.Int64, "id": pl.Int64},
    )


RUN_NAME_CHARS = 32  # a runs table's names, shortened in the middle past this: the page has other columns to show


def runs_frame(
    runs: list[Run],
    sparklines: dict[int, list[float]] | None = None,
    now: datetime | None = None,
    diverged: set[int] | frozenset[int] = frozenset(),
) -> pl.DataFrame:
    """One row per run: name, status (and a diverged flag), timings, final metrics, loss curve, adapter, the config
    columns that differ between the runs (the ones that explain a difference), then its tags."""
    sparklines = sparklines or {}
    config_keys = [key for key in CONFIG_COLUMNS if len({repr(run.config.get(key)) for run in runs}) > 1]
    metric_keys = [key for key in SUMMARY_KEYS if any(key in run.metrics for run in runs)]
    columns: dict[str, list] = {
        "run": [middle_cut(run.name, RUN_NAME_CHARS) for run in runs],
        "status": [run_state(run, run.id in diverged) for run in runs],
        "started": [run.started_at for run in runs],
        "duration": [format_duration(run.started_at, run.ended_at, now) for run in runs],
    }
    for key in metric_keys:
        columns[key] = [run.metrics[key].last if key in run.metrics else None for run in runs]
    columns["loss curve"] = [sparklines.get(run.id, []) for run in runs]
    columns["adapter"] = [f"v{run.adapter.version}" if run.adapter else "" for run in runs]
    for key in config_keys:
        columns[key] = [_cell(run.config.get(key)) for run in runs]
    if any(run.tags for run in runs):  # last: the widest and least read, it pushed the settings off the page
        columns["tags"] = [tags_label(run.tags) for run in runs]
    columns["id"] = [run.id for run in runs]
    overrides = {"started": pl.Datetime("us"), "id": pl.Int64, "loss curve": pl.List(pl.Float64), "adapter": pl.String}
    overrides.update({key: pl.Float64 for key in metric_keys})
    return pl.DataFrame(columns, schema_overrides=overrides)


def workers_training(runs: list[Run], now: datetime, heartbeat_timeout: float) -> int:
    """How many processes, on any machine, run a run now: what the Jobs page counts as workers at work. A run silent
    past the heartbeat timeout does not count: its worker is lost, until a reaper fails the run."""
    return len({run.worker for run in runs if run.status == RunStatus.RUNNING and run.worker and not is_silent(run, now, heartbeat_timeout)})


def no_experiments_message(filtered: bool, deleted_matching: int) -> str:
    """What an empty experiments list says, and where the experiments it does not show are."""
    if deleted_matching:
        return (
            f"No experiments match, but {plural(deleted_matching, 'deleted experiment')} "
            f"{'does' if deleted_matching == 1 else 'do'}: turn on “Show deleted” to see "
            f"{'it' if deleted_matching == 1 else 'them'}."
        )
    if filtered:
        return "No experiments match. Create one above, or clear the filters."
    return "No experiments yet: create one above."


def worker_caption(running_here: bool, team_mode: bool, training: int) -> str:
    """The Jobs page's line on this machine's worker. In team mode the app's machine often runs none (its own is off,
    GPU machines train), which is not something to fix while workers elsewhere train."""
    if running_here:
        return "A worker runs for this machine's data folder."
    if not team_mode:
        return "No worker runs for this machine's data folder: `tunedeck worker` starts one."
    if training:
        return f"No worker runs on this machine; {plural(training, 'worker')} on other machines {'is' if training == 1 else 'are'} training."
    return "No worker runs on this machine, and none is training anywhere: `tunedeck worker` on a GPU machine starts one."


def cancelled_message(label: str, was_running: bool, heartbeat_interval: float) -> str:
    """What a cancel did, said at once: the run is cancelled in the store, but what trains it learns so only at its
    next heartbeat (a worker then stops the training; a script's SDK is told to stop), and the page said nothing."""
    if not was_running:
        return f"Cancelled {label} before it started."
    return f"Cancelled {label}: its training is told to stop at its next heartbeat (every {heartbeat_interval:g} s); what it logged is kept."


def active_runs_frame(
    runs: list[Run], now: datetime, experiment_names: dict[int, str] | None = None, silent_after: float | None = None
) -> pl.DataFrame:
    """The Jobs page: what waits or runs, in which experiment, for how long, on which worker, and when it last said
    so; a running run silent past `silent_after` seconds is marked, as its worker is likely gone."""
    names = experiment_names or {}
    return pl.DataFrame(
        {
            "run": [run_label(run) for run in runs],
            "status": [run.status.value for run in runs],
            "experiment": [names.get(run.experiment_id, f"#{run.experiment_id}") for run in runs],
            "id": [run.id for run in runs],
            "waiting / running for": [format_duration(run.started_at or run.created_at, None, now) for run in runs],
            "worker": [run.worker or "–" for run in runs],
            "last heartbeat": [_heartbeat(run, now, silent_after) for run in runs],
        },
        schema_overrides={"id": pl.Int64},
    )


def _heartbeat(run: Run, now: datetime, silent_after: float | None) -> str:
    if run.heartbeat_at is None:
        return "–"
    said = f"{format_duration(run.heartbeat_at, None, now)} ago"
    return f"{said}: silent, likely lost" if is_silent(run, now, silent_after) else said


def silence_warning(runs: list[Run], now: datetime, silent_after: float) -> str | None:
    """What the Jobs page says when running runs have gone silent past the heartbeat timeout, and what to do."""
    silent = sum(is_silent(run, now, silent_after) for run in runs)
    if not silent:
        return None
    return (
        f"{plural(silent, 'running run')} silent for more than {silent_after:.0f} s: {'its' if silent == 1 else 'their'} "
        "worker is likely gone. A running worker fails such runs as lost at its next check; with none running, start "
        "one, or use “Check for lost workers now” below."
    )


def _cell(value: Any) -> str:
    """A setting in a runs table: a float to four digits as the metrics beside it (a random search's learning rate
    0.005615727697377854 pushed the other settings off the page); the run page has every digit."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(map(_cell, value))
    if isinstance(value, float):
        return format_value(value)
    return str(value)


def run_label(run: Run) -> str:
    return f"{run.name} (#{run.id})"


def experiment_link_label(experiment: Experiment) -> str:
    """A run's or an adapter's link to its experiment, which says when that experiment is deleted."""
    return f"Experiment: {experiment.name}" + (" (deleted)" if experiment.is_deleted else "")


def better_label(direction: str | None) -> str:
    return {"min": "↓ lower", "max": "↑ higher"}.get(direction or "", "–")


def comparison_metrics_frame(comparison: RunComparison) -> pl.DataFrame:
    """Final metrics as numbers, one row per key and one column per run (the CSV download)."""
    labels = {run.id: run_label(run) for run in comparison.runs}
    values: dict[str, list] = {
        "metric": [row.key for row in comparison.metrics],
        "better": [better_label(row.direction) for row in comparison.metrics],
    }
    for run in comparison.runs:
        values[labels[run.id]] = [row.values.get(run.id) for row in comparison.metrics]
    return pl.DataFrame(values, schema_overrides={labels[run.id]: pl.Float64 for run in comparison.runs})


BEST_MARK = "★"
DIVERGED_MARK = "⚠"
# The experiments list's sorts as the page names them: the store's own (all but its tie-break by ID).
SORT_LABELS = {key: key.removesuffix("_at").replace("_", " ").capitalize() for key in EXPERIMENT_SORTS if key != "id"}
# What "descending" means for each: "Newest / highest first" read oddly beside a sort by name.
DESCENDING_LABELS = {"created_at": "Newest first", "updated_at": "Latest first", "run_count": "Most runs first"}


def descending_label(sort: str) -> str:
    """The label of the list's order toggle for a sort: by date, by count, or by text (name, status)."""
    return DESCENDING_LABELS.get(sort, "Z to A")


def descends_first(sort: str) -> bool:
    """The order a sort starts in: dates and counts newest or most first, text (name, status) A to Z."""
    return sort in DESCENDING_LABELS


COMPARISON_LEAD = ("metric", "better", "best run")  # comparison_table's columns before one per run


def comparison_table(comparison: RunComparison, diverged: set[int] = frozenset()) -> pl.DataFrame:
    """Final metrics as the compare page shows them: each run's status first (a failed or cancelled run is never
    best; a diverged one is marked ⚠), then one row per key, which way is better and which run is best, then a cell per
    run to 4 significant digits with the best run's marked ★ (a mark, not a colour: styling the cells through a
    pandas Styler cost more than the rest of the table)."""
    labels = {run.id: run_label(run) for run in comparison.runs}
    lead = (
        ["run status", *(row.key for row in comparison.metrics)],
        ["", *(better_label(row.direction) for row in comparison.metrics)],
        ["", *(labels.get(row.best_run_id, "–") for row in comparison.metrics)],
    )
    columns: dict[str, list] = dict(zip(COMPARISON_LEAD, lead, strict=True))
    for run in comparison.runs:
        status = f"{run.status.value} {DIVERGED_MARK}" if run.id in diverged else run.status.value  # short: the
        # column is as wide as a run's numbers, and a longer status was cut
        columns[labels[run.id]] = [status] + [
            f"{BEST_MARK} {format_value(row.values.get(run.id))}" if row.best_run_id == run.id else format_value(row.values.get(run.id))
            for row in comparison.metrics
        ]
    return pl.DataFrame(columns, schema={name: pl.String for name in columns})


def aggregates_frame(aggregates: list[MetricAggregate], runs: list[Run]) -> pl.DataFrame:
    """The experiment page's aggregated metrics: per metric, which way is better, the best final value and its
    run, the mean, over how many completed runs."""
    labels = {run.id: run_label(run) for run in runs}
    return pl.DataFrame(
        {
            "metric": [a.key for a in aggregates],
            "better": [better_label(a.direction) for a in aggregates],
            "best": [a.best for a in aggregates],
            "best run": [labels.get(a.best_run_id) for a in aggregates],
            "mean": [a.mean for a in aggregates],
            "completed runs": [a.count for a in aggregates],
        },
        schema={"metric": pl.String, "better": pl.String, "best": pl.Float64, "best run": pl.String, "mean": pl.Float64,
                "completed runs": pl.Int64},
    )  # fmt: skip


def runs_overview(runs: list[Run], experiment_names: dict[int, str]) -> pl.DataFrame:
    """Which experiment each compared run is from, and its status: the compare page shows it when the runs come from
    more than one experiment, where a 'best run' may measure another dataset."""
    return pl.DataFrame(
        {
            "run": [run_label(run) for run in runs],
            "experiment": [experiment_names.get(run.experiment_id, f"#{run.experiment_id}") for run in runs],
            "status": [run.status.value for run in runs],
        }
    )


def config_diff_frame(comparison: RunComparison, only_differences: bool = True) -> pl.DataFrame:
    rows = comparison.differing_config if only_differences else comparison.config
    columns: dict[str, list] = {"setting": [row.key for row in rows]}
    for run in comparison.runs:
        columns[run_label(run)] = [_cell(row.values.get(run.id)) for row in rows]
    return pl.DataFrame(columns, schema={name: pl.String for name in columns})


def comparison_csv(comparison: RunComparison) -> str:
    values = comparison_metrics_frame(comparison)
    config = config_diff_frame(comparison, only_differences=False).rename({"setting": "metric"})
    config = config.with_columns(pl.lit("config").alias("better")).select(values.columns)
    return pl.concat([values.cast({c: pl.String for c in values.columns}), config]).write_csv()


def best_adapters(adapters: list[Adapter], experiments: dict[int, Experiment]) -> set[int]:
    """IDs of the adapters trained by their experiment's best run on its primary metric."""
    best_runs = {e.id: e.best_primary.run_id for e in experiments.values() if e.best_primary is not None}
    return {a.id for a in adapters if best_runs.get(a.experiment_id) == a.run_id}


def adapter_mark(best: bool, diverged: bool) -> str:
    """The badge an adapter carries in the registry: best of its experiment, and/or trained by a diverged run."""
    return " · ".join(mark for mark, on in (("★ best", best), (f"⚠ {DIVERGED}", diverged)) if on)


def _experiment_cell(experiment: Experiment | None, experiment_id: int) -> str:
    if experiment is None:
        return f"#{experiment_id}"
    return f"{experiment.name} (#{experiment.id}{', deleted' if experiment.is_deleted else ''})"


def adapters_frame(
    adapters: list[Adapter],
    runs: dict[int, Run] | None = None,
    best: set[int] | frozenset[int] = frozenset(),
    diverged_runs: set[int] | frozenset[int] = frozenset(),
    aliases: list[AdapterAlias] | None = None,
    experiments: dict[int, Experiment] | None = None,
) -> pl.DataFrame:
    """One row per adapter, newest first as given; a row is opened by selecting it (the id column). The experiment
    tells apart versions of one name trained by two experiments that had it (one deleted, its name reused)."""
    runs, experiments = runs or {}, experiments or {}
    labels = aliases_by_adapter(aliases or [])

    def metric(adapter: Adapter, key: str) -> float | None:
        run = runs.get(adapter.run_id)
        return run.metrics[key].last if run and key in run.metrics else None

    return pl.DataFrame(
        {
            "adapter": [a.name for a in adapters],
            "version": [f"v{a.version}" for a in adapters],
            "experiment": [_experiment_cell(experiments.get(a.experiment_id), a.experiment_id) for a in adapters],
            "aliases": [", ".join(labels.get(a.id, [])) for a in adapters],
            "mark": [adapter_mark(a.id in best, a.run_id in diverged_runs) for a in adapters],
            "base model": [a.base_model for a in adapters],
            "size": [format_size(a.size_bytes) for a in adapters],
            "run": [f"#{a.run_id}" for a in adapters],
            "eval_loss": [metric(a, "eval_loss") for a in adapters],
            "eval_accuracy": [metric(a, "eval_accuracy") for a in adapters],
            "created": [a.created_at for a in adapters],
            "id": [a.id for a in adapters],
        },
        schema_overrides={
            "eval_loss": pl.Float64,
            "eval_accuracy": pl.Float64,
            "created": pl.Datetime("us"),
            "id": pl.Int64,
        },
    )


def aliases_by_adapter(aliases: list[AdapterAlias]) -> dict[int, list[str]]:
    """Each adapter's aliases, sorted: what its row and its page show."""
    found: dict[int, list[str]] = {}
    for alias in sorted(aliases, key=lambda a: a.alias):
        found.setdefault(alias.adapter_id, []).append(alias.alias)
    return found


def alias_moved(alias: str, name: str, before: int | None, after: int) -> str:
    """What setting an alias did: set it, moved it, or left it where it was."""
    if before is None:
        return f"{name}@{alias} now points at v{after}."
    if before == after:
        return f"{name}@{alias} already points at v{after}."
    return f"{name}@{alias} moved from v{before} to v{after}."


def parse_id(raw: str | None, what: str) -> int | None:
    """An ID from a URL query parameter; None when absent, ValidationError when malformed."""
    if raw is None or raw == "":
        return None
    text = raw.strip()
    if re.fullmatch(r"[0-9]{19,}", text):
        raise ValidationError(f"the {what} ID {raw[:50]!r} is larger than any ID TuneDeck gives out")
    if not re.fullmatch(r"[0-9]{1,18}", text) or int(text) < 1:  # typed in the compare page's box, or in a link
        raise ValidationError(f"the {what} ID {raw[:50]!r} is not a positive whole number")
    return int(text)


def parse_run_ids(raw: str | None, limit: int = 50) -> tuple[list[int], list[str]]:
    """`?runs=1,2,x` → ([1, 2], ["x"]): the IDs in order without repeats, and what is not an ID, to be said and
    skipped as an unknown run is (one typo compared nothing)."""
    if not raw:
        return [], []
    parts = list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))  # a repeat is one run
    if len(parts) > limit:
        raise ValidationError(f"compare at most {limit} runs at once; the link names {len(parts)}")
    ids, ignored = [], []
    for part in parts:
        try:
            ids.append(parse_id(part, "run"))
        except ValidationError:
            ignored.append(part[:50])
    return list(dict.fromkeys(ids)), ignored


def disputed_note(keys: list[str]) -> str:
    """Why a metric of runs from several experiments has no best run."""
    which = ", ".join(keys)
    return (
        f"Their experiments disagree on which way is better for {which} (one was set to count the other way), so no "
        f"run is marked best for {'it' if len(keys) == 1 else 'them'}."
    )


def compare_warnings(ignored: list[str], missing: list[int], found_any: bool) -> list[str]:
    """What the compare page says of a link's parts it skipped: not IDs at all, and IDs of no run."""
    said = []
    if ignored:
        said.append(f"Skipped {', '.join(quoted(part) for part in ignored)}: run IDs are positive whole numbers, like 12.")
    if missing:
        unknown = f"No {'run with ID' if len(missing) == 1 else 'runs with IDs'} {', '.join(map(str, missing))}"
        said.append(f"{unknown}: comparing the others." if found_any else f"{unknown}.")
    return said


def chart_keys(keys: list[str]) -> list[str]:
    """The metrics charted by default: not system/* (CPU, memory, GPU), which the picker offers, so training curves come first."""
    return [key for key in keys if not is_system_metric(key)]


def groups_frame(groups: pl.DataFrame, by: list[str], metrics: list[str]) -> pl.DataFrame:
    """Groups as a table: the shared values, how many runs, and 'mean ± std' per metric ('mean' alone for one run).
    Headers are the bare keys unless a param and a metric share one."""
    rows = groups.to_dicts()
    names = [short(column) for column in [*by, *metrics]]
    header = {column: short(column) if names.count(short(column)) == 1 else column for column in [*by, *metrics]}
    table: dict[str, list] = {header[column]: [format_param(row[column]) for row in rows] for column in by}
    table["runs"] = [row["runs"] for row in rows]
    for metric in metrics:
        table[header[metric]] = [spread(row[f"{metric} mean"], row[f"{metric} std"]) for row in rows]
    return pl.DataFrame(table)


def format_param(value: object) -> str:
    """A param's value in a table cell: numbers as format_value writes them, '–' for a run that has none."""
    if isinstance(value, float):
        return format_value(value)
    return "–" if value is None else str(value)


def spread(mean: float | None, std: float | None) -> str:
    """'0.34 ± 0.04'; the mean alone when there is no spread (one run), '–' when no run logged it. The spread to two
    significant digits, written as the mean is ('95,765 ± 15,000', not '± 1.5e+04')."""
    if mean is None:
        return "–"
    return format_value(mean) if std is None else f"{format_value(mean)} ± {format_value(float(f'{std:.2g}'))}"


def clone_note(label: str, config: dict, copied: dict) -> str:
    """What the New run form says of the run it copies. A script's run brings params of its own, not settings a
    TuneDeck trainer reads: the form starts from the defaults and says which params it left out."""
    if "trainer" in config:
        return f"Settings copied from {label}: change any, then start."
    own = sorted(set(config) - set(copied))
    shared = f", with the settings it shares with them ({', '.join(sorted(copied))})" if copied else ""
    left_out = f" Its params {', '.join(own)} are not settings a TuneDeck trainer reads." if own else ""
    return f"{label} was logged by a script, so the form starts from the defaults{shared}.{left_out}"
