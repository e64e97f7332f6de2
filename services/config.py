"""Settings, read once from the environment (prefix ``SPAREFLOW_``) with embedded defaults.

With nothing configured Spareflow runs on a SQLite file and a blob directory inside ``data_dir`` and
starts an embedded Redis on a unix socket there. Production sets ``database_url`` (PostgreSQL) and
``redis_url``; the code path is the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from parts_catalog.formats import ArchiveLimits

MB = 1000 * 1000
# Where `.ci/run` puts Cura's machine definitions (an editable install runs from the checkout).
_CHECKOUT = Path(__file__).resolve().parents[1]


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
    queue_name: str = Field(
        default="spareflow:queue",
        min_length=1,
        max_length=100,
        description="The arq queue API and workers share.",
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

    max_model_faces: int = Field(
        default=5_000_000,
        gt=0,
        description="Models with more faces are refused before loading (memory bound).",
    )
    mesh_workers: int = Field(
        default=1, ge=1, le=64, description="Worker processes for mesh work per worker."
    )
    # trimesh peaks at ~570 bytes/face (GEOMETRY-AND-SLICING.md): 5M faces needs ~2.8 GB.
    mesh_memory_limit_bytes: int = Field(default=4 * 1024**3, gt=0)
    check_timeout_s: float = Field(default=180.0, gt=0, description="Per-model check and repair time limit.")
    slice_timeout_s: float = Field(
        default=900.0, gt=0, description="Per-job orientation and slicing time limit."
    )
    slicer_memory_limit_bytes: int = Field(default=4 * 1024**3, gt=0)
    max_job_attempts: int = Field(
        default=4, ge=1, le=50, description="Retries before work is parked as failed."
    )
    # arq's default of 0.5 s between queue polls would add up to a second to every upload-to-G-code run
    # (two hops); a Redis poll costs microseconds.
    worker_poll_delay_s: float = Field(
        default=0.02, gt=0, le=10, description="How often an idle worker polls."
    )
    job_lease_s: float = Field(
        default=30.0,
        ge=1,
        le=600,
        description="A running job's claim in Redis, renewed while it runs: a killed worker's jobs run "
        "again elsewhere within it.",
    )
    reconcile_after_seconds: int = Field(
        default=60, ge=1, description="Pending work older than this, with no queued job, is enqueued again."
    )
    prusaslicer_binary: str = "prusa-slicer"
    curaengine_binary: str = "CuraEngine"
    cura_resources_dir: Path | None = Field(
        default=None,
        description="Cura's resources (definitions/, extruders/). Default: .cache/cura in the checkout, "
        "then Debian's /usr/share/cura/resources.",
    )

    orphan_blob_grace_seconds: int = Field(
        default=3600, ge=0, description="Unreferenced blobs younger than this are kept (uploads in flight)."
    )
    idempotency_retention_hours: int = Field(
        default=48, ge=24, le=24 * 30, description="How long an Idempotency-Key and its answer are kept."
    )
    idempotency_lock_timeout_s: float = Field(
        default=60.0, gt=0, description="A key whose first request has not answered by then may be retried."
    )
    routing_snapshot_max_age_s: float = Field(
        default=2.0,
        ge=0,
        description="How long a process routes on its snapshot of reservations before reloading. Only a "
        "first guess: the chosen sites are always re-read under lock.",
    )
    watchdog_interval_minutes: int = Field(
        default=5, ge=1, le=60, description="How often the SLA watchdog checks unstarted orders."
    )
    reoptimize_interval_minutes: int = Field(
        default=15, ge=1, le=24 * 60, description="How often the batch re-optimiser runs."
    )
    reoptimize_min_gain: float = Field(
        default=5.0,
        ge=0,
        description="What a move must save (courier cost units; an hour late costs 1) to be worth the churn.",
    )
    factory_lease_seconds: float = Field(
        default=120.0,
        ge=1,
        le=3600,
        description="A claimed print job's lease; each heartbeat extends it. Past it, the job can be "
        "claimed again.",
    )
    factory_claim_max_wait_s: float = Field(
        default=30.0, ge=0, le=60, description="The longest a claim long-polls for a job."
    )
    factory_claim_poll_s: float = Field(
        default=1.0, gt=0, le=10, description="How often a waiting claim looks for a job again."
    )
    site_silence_seconds: int = Field(
        default=600,
        ge=10,
        description="A site whose agents have called before and then stay silent this long goes offline "
        "(its unstarted orders are re-routed); its next call brings it back.",
    )
    max_print_failures_per_site: int = Field(
        default=2, ge=1, le=20, description="Failed prints of one job at one site before it is re-routed."
    )
    public_base_url: str | None = Field(
        default=None,
        description="Where partners and the built-in courier reach this API, e.g. https://api.example.com. "
        "Default: http://api_host:api_port.",
    )
    karrio_url: str | None = Field(
        default=None,
        description="A Karrio server's base URL; sites whose courier is `karrio` book through it.",
    )
    karrio_token: SecretStr | None = Field(default=None, description="Karrio API token.")
    karrio_carrier: str = Field(
        default="generic", max_length=64, description="The Karrio carrier connection to book with."
    )
    courier_timeout_s: float = Field(default=15.0, gt=0, le=120, description="Per courier API call.")
    local_courier_time_scale: float = Field(
        default=1.0,
        ge=1,
        le=1_000_000,
        description="How much faster than real time the built-in courier's parcels travel (demos: 3600).",
    )
    max_json_body_bytes: int = Field(
        default=1 * MB,
        ge=64 * 1024,
        le=100 * MB,
        description="Larger JSON request bodies are refused (413) as soon as they pass it, before parsing.",
    )
    webhook_max_body_bytes: int = Field(
        default=256 * 1024, ge=1024, le=10 * MB, description="Larger inbound webhooks are refused (413)."
    )
    webhook_dedup_hours: int = Field(
        default=72,
        ge=72,
        le=24 * 90,
        description="How long inbound webhook ids are remembered: a replay within it is processed once.",
    )
    webhooks_allow_private_targets: bool = Field(
        default=False,
        description="Let customers' webhook endpoints resolve to loopback, private, CGNAT or reserved "
        "addresses (development and tests only; cloud metadata and link-local addresses stay refused).",
    )
    webhook_retry_schedule_s: list[Annotated[float, Field(gt=0, le=86400)]] = Field(
        default=[5, 30, 120, 600, 3600, 3 * 3600, 8 * 3600],
        max_length=20,
        description="Seconds before each retry of a failed outbound webhook delivery; after the last, the "
        "delivery is failed. JSON list in the environment.",
    )
    webhook_disable_after_failures: int = Field(
        default=15,
        ge=1,
        le=1000,
        description="Consecutive failed attempts after which an outbound webhook endpoint is disabled and "
        "its pending deliveries abandoned.",
    )
    webhook_timeout_s: float = Field(
        default=10.0, gt=0, le=60, description="Time limit of one outbound webhook attempt, DNS included."
    )
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`json`: one JSON object per line with the request and order ids (production); "
        "`text`: plain lines for a terminal.",
    )
    worker_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Where `spareflow worker` serves its Prometheus /metrics (0: not served). The API "
        "serves its own at /metrics on the API port.",
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'spareflow.db').resolve()}"

    @property
    def resolved_blob_dir(self) -> Path:
        return (self.blob_dir or self.data_dir / "blobs").resolve()

    @property
    def staging_dir(self) -> Path:
        """Uploads land here first; it sits beside the blobs so a finished upload is a rename, not a copy."""
        return self.resolved_blob_dir / ".staging"

    @property
    def slicer_cache_dir(self) -> Path:
        return (self.data_dir / "slicer-cache").resolve()

    @property
    def resolved_cura_resources_dir(self) -> Path | None:
        candidates = [
            self.cura_resources_dir,
            _CHECKOUT / ".cache" / "cura" / "usr" / "share" / "cura" / "resources",
            Path("/usr/share/cura/resources"),
        ]
        return next((p for p in candidates if p is not None and (p / "definitions").is_dir()), None)

    @property
    def resolved_public_base_url(self) -> str:
        return (self.public_base_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

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
