"""The arq worker: its functions, cron schedule and lifecycle hooks."""

from __future__ import annotations

from arq import cron
from arq.connections import RedisSettings
from arq.worker import Worker

from services.config import Settings
from services.workers.context import on_shutdown, on_startup
from services.workers.jobs.maintenance import sweep_orphan_blobs

FUNCTIONS = [sweep_orphan_blobs]
CRON_JOBS = [
    # Hourly is plenty: the grace period is an hour, and unique=True keeps many workers from racing.
    cron(sweep_orphan_blobs, minute={7}, unique=True, run_at_startup=False),
]


def build_worker(
    settings: Settings, redis_url: str, *, burst: bool = False, handle_signals: bool = True
) -> Worker:
    return Worker(
        functions=FUNCTIONS,
        cron_jobs=CRON_JOBS,
        redis_settings=RedisSettings.from_dsn(redis_url),
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        ctx={"settings": settings},
        burst=burst,
        handle_signals=handle_signals,
        # A job that fails is retried, never dropped; the database stays the source of truth.
        max_tries=5,
    )
