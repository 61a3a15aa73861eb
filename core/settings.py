"""Every setting in one place: its default and the environment variable that overrides it."""

import functools
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from core import resources
from core.client_settings import DATA_DIR, LOCK_TIMEOUT, STORE_FILE, STORE_SERVER_IDLE_EXIT
from core.errors import TuneDeckError, ValidationError
from core.store_url import checked_store_url, is_postgres, redacted

MAX_WORKERS = 64  # training jobs one worker process may run at once


class Settings(BaseSettings):
    # shared: see get_settings. An empty variable (`export TUNEDECK_DATA_DIR=` left in a shell) counts as unset: read
    # as a value, it put the store in the working folder.
    model_config = SettingsConfigDict(env_prefix="TUNEDECK_", extra="ignore", frozen=True, env_ignore_empty=True)

    data_dir: Path = Field(DATA_DIR, description="Store, queue, logs and adapters (TUNEDECK_DATA_DIR).")
    lock_timeout: float = Field(LOCK_TIMEOUT, gt=0, description="Seconds an operation may wait for the store server's answer.")
    store_url: SecretStr = Field(
        SecretStr(""),
        description="Empty: the embedded DuckDB store in the data directory; postgresql://user@host:port/db: team mode.",
    )
    artifact_root: Path | None = Field(
        None, description="Where adapters are copied for every machine to fetch; empty: the data directory's adapters folder."
    )
    queue_url: str = Field(
        "",
        description="Empty: SQLite queue in the data directory (in team mode: the store's PostgreSQL database); "
        "redis://host:port/db: Redis queue.",
    )
    workers: int = Field(2, ge=1, le=MAX_WORKERS, description="Training jobs one worker process runs at once.")
    heartbeat_interval: float = Field(2.0, gt=0, description="Seconds between a running job's heartbeats.")
    heartbeat_timeout: float = Field(60.0, gt=0, description="A running run silent this long is failed as 'worker lost'.")
    embedded_worker: bool = Field(True, description="Auto-start a worker with the app or start_run() when none runs.")
    worker_idle_exit: float = Field(300.0, ge=0, description="An auto-started worker with no parent exits when idle this long (0: never).")
    store_server_idle_exit: float = Field(STORE_SERVER_IDLE_EXIT, ge=0, description="The store server exits after this many idle seconds.")
    read_cache_mb: int = Field(
        64,
        ge=0,
        description="Memory the store server keeps answers to reads in while they hold (until the next commit; a run's "
        "curves until it logs a point); 0 turns it off.",
    )
    journal_fsync: bool = Field(
        False, description="fsync each logged call's journal entry: survives a machine crash too, not only a killed process."
    )
    commands_file: Path = Field(Path("commands.toml"), description="The administrator's registered training commands.")
    system_metrics_interval: float = Field(
        5.0, ge=0, description="Seconds between samples of a training's CPU, memory and GPU use; 0 turns them off."
    )
    idle_check_interval: float = Field(
        10.0, ge=1, description="Seconds between an idle page's checks for runs started elsewhere (a script, another tab)."
    )
    mode: Literal["online", "disabled"] = Field(
        "online", description="disabled: every SDK call is a no-op that stores nothing (for your own tests and CI)."
    )
    dataset_roots: str = Field(
        "", description="Folders datasets may come from, separated by ':'; empty: the working folder, data dir and sample data."
    )

    @field_validator("queue_url")
    @classmethod
    def _known_queue(cls, url: str) -> str:
        if url and not url.startswith(("redis://", "rediss://", "postgresql://", "postgres://")):
            raise ValueError(
                "TUNEDECK_QUEUE_URL must be empty (SQLite queue in the data directory, or in team mode the store's "
                "database), a postgresql:// or a redis:// URL"
            )
        if is_postgres(url):  # a database of its own: checked as the store's URL is, its password never shown
            try:
                checked_store_url(url, "the URL")
            except TuneDeckError as error:
                raise ValueError(str(error)) from None
        return url

    @model_validator(mode="after")
    def _timeout_outlasts_heartbeats(self) -> "Settings":
        if self.heartbeat_timeout < 2 * self.heartbeat_interval:  # one late beat would fail a healthy run as lost
            raise ValueError(
                f"TUNEDECK_HEARTBEAT_TIMEOUT must be at least twice TUNEDECK_HEARTBEAT_INTERVAL "
                f"({self.heartbeat_interval:g} s), got {self.heartbeat_timeout:g} s"
            )
        return self

    @property
    def allowed_dataset_roots(self) -> list[Path]:
        if self.dataset_roots.strip():
            return [Path(part).resolve() for part in self.dataset_roots.split(os.pathsep) if part.strip()]
        return [Path.cwd().resolve(), self.data_dir.resolve(), resources.sample_dir().resolve()]

    @property
    def team_mode(self) -> bool:
        """The store is on PostgreSQL, shared by every machine."""
        return bool(self.store_url.get_secret_value())

    @property
    def effective_queue_url(self) -> str:
        """Where the queue lives: TUNEDECK_QUEUE_URL, else in team mode the store's database, else '' (SQLite)."""
        return self.queue_url or self.store_url.get_secret_value()

    @property
    def store_path(self) -> Path:
        return self.data_dir / STORE_FILE

    @property
    def queue_path(self) -> Path:
        return self.data_dir / "queue.sqlite3"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def adapters_dir(self) -> Path:
        return self.data_dir / "adapters"

    @property
    def checkpoints_dir(self) -> Path:
        return self.data_dir / "checkpoints"

    @property
    def models_dir(self) -> Path:
        """Your own base models, by folder name; the shipped ones are in the project's data/models."""
        return self.data_dir / "models"


def get_settings() -> Settings:
    """The settings the environment gives now (variables are TUNEDECK_ + the field name in capitals).

    Parsed once per distinct set of TUNEDECK_ variables: the SDK asks on every run, and validating costs
    milliseconds while looking at the environment costs microseconds."""
    return _settings_for(tuple(sorted((name, value) for name, value in os.environ.items() if name.startswith("TUNEDECK_"))))


@functools.lru_cache(maxsize=16)
def _settings_for(variables: tuple[tuple[str, str], ...]) -> Settings:
    try:
        return Settings()
    except PydanticValidationError as error:  # a script, a worker or the app: each says which variable to fix
        raise ValidationError(_what_to_fix(error)) from None


def _what_to_fix(error: PydanticValidationError) -> str:
    item = error.errors()[0]
    message = item["msg"].removeprefix("Value error, ")
    if not item["loc"]:  # about how two settings go together: it names both
        return message
    variable = f"TUNEDECK_{str(item['loc'][0]).upper()}"
    if message.startswith(variable):
        return message
    return f"{variable}: {message}, got {redacted(str(item['input']))[:100]!r}"  # a URL's password never shown
