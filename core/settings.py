"""Every setting in one place: its default and the environment variable that overrides it."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNEDECK_", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Store, queue, logs and adapters live here (TUNEDECK_DATA_DIR).")
    lock_timeout: float = Field(
        60.0, gt=0, description="Seconds to keep retrying while other processes hold the store (TUNEDECK_LOCK_TIMEOUT)."
    )

    @property
    def store_path(self) -> Path:
        return self.data_dir / "tunedeck.duckdb"


def get_settings() -> Settings:
    """Read the environment afresh, so a test or a worker can point at another data directory."""
    return Settings()
