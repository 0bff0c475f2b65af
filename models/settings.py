"""Configuration, read from ``ISOBENCH_*`` environment variables (and a ``.env`` file)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///isobench.db"


def normalize_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever spelling the user gave."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ISOBENCH_", env_file=".env", extra="ignore", validate_default=True
    )

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL. Default: an SQLite file in the working directory; "
        "set a postgresql:// URL for production.",
    )
    max_patch_bytes: int = Field(
        5 * 1024 * 1024, ge=1, description="Patches above this size are recorded, not stored."
    )
    log_tail_bytes: int = Field(
        64 * 1024, ge=1024, description="Bytes of each log stream kept per run (the tail)."
    )

    @field_validator("database_url")
    @classmethod
    def _driver(cls, value: str) -> str:
        return normalize_database_url(value)
