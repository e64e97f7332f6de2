"""Run the real arq worker inside a test until its queue is empty."""

from __future__ import annotations

from services.config import Settings
from services.workers.settings import build_worker


async def run_worker_until_idle(settings: Settings) -> int:
    """Process every queued job (and the jobs they enqueue) on the test's own queue; return how many ran."""
    assert settings.redis_url
    worker = build_worker(settings, settings.redis_url, burst=True, handle_signals=False)
    try:
        await worker.async_run()
    finally:
        await worker.close()
    assert worker.jobs_failed == 0, f"{worker.jobs_failed} jobs failed"
    return worker.jobs_complete
