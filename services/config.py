"""Settings, read once from the environment (prefix ``SPAREFLOW_``) with embedded defaults.

With nothing configured Spareflow runs on a SQLite file and a blob directory inside ``data_dir`` and
starts an embedded Redis on a unix socket there. Production sets ``database_url`` (PostgreSQL) and
``redis_url``; the code path is the same.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from parts_catalog.formats import ArchiveLimits

MB = 1000 * 1000


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPAREFLOW_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path(".spareflow"), description="Where embedded state lives.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL (postgresql+asyncpg://user@host/db). Default: SQLite in data_dir.",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis:// or unix:// URL. Default: an embedded Redis started by the process.",
    )
    blob_dir: Path | None = Field(default=None, description="Model file storage. Default: data_dir/blobs.")

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)

    max_upload_bytes: int = Field(default=200 * MB, gt=0, description="Cap on one model upload.")
    max_archive_uncompressed_bytes: int = Field(
        default=1000 * MB, gt=0, description="Cap on the decompressed size of a 3MF archive."
    )
    # Mesh XML compresses roughly 5-20x; zip bombs reach 1000x and more.
    max_archive_compression_ratio: float = Field(default=100.0, gt=1)
    max_archive_entries: int = Field(default=1000, gt=0)

    orphan_blob_grace_seconds: int = Field(
        default=3600, ge=0, description="Unreferenced blobs younger than this are kept (uploads in flight)."
    )
    log_level: str = "INFO"

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'spareflow.db').resolve()}"

    @cached_property
    def resolved_blob_dir(self) -> Path:
        return (self.blob_dir or self.data_dir / "blobs").resolve()

    @cached_property
    def staging_dir(self) -> Path:
        """Uploads land here first; it sits beside the blobs so a finished upload is a rename, not a copy."""
        return self.resolved_blob_dir / ".staging"

    @property
    def uses_embedded_redis(self) -> bool:
        return not self.redis_url

    @property
    def archive_limits(self) -> ArchiveLimits:
        return ArchiveLimits(
            max_uncompressed_bytes=self.max_archive_uncompressed_bytes,
            max_compression_ratio=self.max_archive_compression_ratio,
            max_entries=self.max_archive_entries,
        )
