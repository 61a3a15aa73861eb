"""What the store hands out and takes in: plain Pydantic data, no connections, no SQL."""

import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import polars as pl
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from core.directions import Direction
from core.points import KEY_CHARACTERS, MAX_KEY
from core.status import ExperimentStatus, RunStatus


def utcnow() -> datetime:
    """Now as the store keeps times: naive, in UTC."""
    return datetime.now(UTC).replace(tzinfo=None)

# Text-direction overrides, embeddings and isolates: in a name they turn the page's text around them backwards.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _no_control_characters(text: str) -> str:
    if any(unicodedata.category(ch) == "Cc" or ch in _BIDI_CONTROLS for ch in text):
        raise ValueError("must not contain control characters such as newlines, tabs or text-direction overrides")
    return text


def _no_nul(text: str) -> str:
    """Free text may hold newlines and tabs, but not NUL, which no PostgreSQL text can keep (a paste from a binary file)."""
    if "\x00" in text:
        raise ValueError("must not contain NUL characters (\\x00), which come from binary data rather than typed text")
    return text


def without_nul(text: str) -> str:
    """Machine-made text (a process's output, a traceback, a model's answer) as every backend keeps it: each NUL
    character becomes U+FFFD, the replacement character (PostgreSQL's text cannot hold NUL)."""
    return text.replace("\x00", "\ufffd")


_INVISIBLE = frozenset({"Cf", "Mn", "Me", "Zs", "Zl", "Zp"})  # zero-width and joining marks, combining marks, spaces


def _something_visible(text: str) -> str:
    """A name of zero-width characters alone shows as a blank row and passes for another name."""
    if text and all(unicodedata.category(ch) in _INVISIBLE for ch in text):
        raise ValueError("must have a visible character (this one has only invisible ones, such as zero-width spaces)")
    return text


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_no_control_characters),
    AfterValidator(_something_visible),
]
DatasetRef = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000), AfterValidator(_no_control_characters)
]
MetricKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY, pattern=rf"^[{KEY_CHARACTERS}]+$")]
TagKey = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_KEY, pattern=rf"^[{KEY_CHARACTERS}]+$")
]
TagValue = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=1000), AfterValidator(_no_control_characters)
]
NoteText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20_000), AfterValidator(_no_nul)]  # trimmed, then measured
Target = Literal["experiment", "run"]  # what tags and notes are put on


class Entity(BaseModel):
    model_config = ConfigDict(frozen=True)


class ExperimentCreate(Entity):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    dataset: DatasetRef
    description: Annotated[str, StringConstraints(max_length=5000), AfterValidator(_no_nul)] = ""
    primary_metric: MetricKey | None = None


class BestMetric(Entity):
    key: str
    value: float
    run_id: int
    direction: Direction


class Experiment(Entity):
    id: int
    name: str
    dataset: str
    description: str
    status: ExperimentStatus
    last_error: str | None
    primary_metric: str = Field(description="The metric that ranks runs: the one set, else eval_loss if logged, else loss, else the first logged (by name).")
    metric_directions: dict[str, Direction]
    run_count: int
    best_metrics: list[BestMetric]
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    tags: dict[str, str] = Field(default_factory=dict)
    note: str = ""

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def best_primary(self) -> BestMetric | None:
        return next((best for best in self.best_metrics if best.key == self.primary_metric), None)


class ExperimentPage(Entity):
    items: list[Experiment]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


class MetricSummary(Entity):
    key: str
    last: float
    last_step: int
    min: float
    max: float
    count: int


class AdapterRef(Entity):
    id: int
    name: str
    version: int


class Run(Entity):
    id: int
    experiment_id: int
    name: str
    status: RunStatus
    config: dict[str, Any]
    error: str | None
    traceback: str | None
    attempt: int
    worker: str | None
    job_id: str | None
    adapter: AdapterRef | None
    metrics: dict[str, MetricSummary]
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    heartbeat_at: datetime | None
    tags: dict[str, str] = Field(default_factory=dict)
    note: str = ""


class MetricAggregate(Entity):
    """One metric across an experiment's runs, each run counted by its final value."""

    key: str
    direction: Direction | None
    best: float | None
    best_run_id: int | None
    mean: float
    count: int


class ExperimentDetail(Entity):
    experiment: Experiment
    runs: list[Run]
    aggregates: list[MetricAggregate]


class AdapterSpec(Entity):
    """What a finished training job hands over for registration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Annotated[str, StringConstraints(min_length=1, max_length=4000)]
    base_model: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    size_bytes: int = Field(ge=0)
    checksum: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    name: Name | None = None


class Adapter(Entity):
    id: int
    name: str
    version: int
    path: str
    base_model: str
    size_bytes: int
    checksum: str
    run_id: int
    experiment_id: int
    created_at: datetime


class AdapterAlias(Entity):
    """A movable name for one version of an adapter name: `sentiment@production` -> v3."""

    name: str
    alias: str
    adapter_id: int
    version: int
    updated_at: datetime


class RunMetrics(Entity):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    run_id: int
    series: pl.DataFrame = Field(description="Columns key, step, value, wall_time, ordered by key then step.")
    summary: dict[str, MetricSummary]

    def of(self, key: str) -> pl.DataFrame:
        return self.series.filter(pl.col("key") == key)


class MetricComparison(Entity):
    key: str
    direction: Direction | None
    values: dict[int, float | None]
    best_run_id: int | None


class ConfigDifference(Entity):
    key: str
    values: dict[int, Any]
    differs: bool


class RunComparison(Entity):
    runs: list[Run]
    metrics: list[MetricComparison]
    config: list[ConfigDifference]
    disputed: list[str] = []  # metrics whose runs' experiments disagree on which way is better: no best run

    @property
    def differing_config(self) -> list[ConfigDifference]:
        return [row for row in self.config if row.differs]
