"""The database is the source of truth: work whose wake-up call was lost is found and done."""

from __future__ import annotations

import httpx
import pytest
from arq import create_pool
from arq.connections import RedisSettings
from arq.jobs import JobStatus

from services.api.app import create_app
from services.config import Settings
from services.demo.meshes import DEMO_PARTS, export_model
from tests.builders import bearer, make_account, make_admin_token, make_part, upload
from tests.workers import run_worker_until_idle


async def test_an_upload_whose_job_never_reached_redis_is_still_checked(settings: Settings) -> None:
    # The API runs without a queue: every wake-up call is "lost".
    offline = settings.model_copy(update={"redis_url": None})
    app = create_app(offline)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            admin = await make_admin_token(settings)
            org = await make_account(client, admin, "organizations")
            part = await make_part(client, admin, organization_id=org["id"])
            demo = DEMO_PARTS[3]
            revision = (
                await upload(client, admin, part["id"], export_model(demo.build(), demo.file_format))
            ).json()

            # The worker's startup reconcile (and whatever cron tick falls in) finds it too fresh to touch.
            await run_worker_until_idle(settings)
            path = f"/parts/{part['id']}/revisions/{revision['id']}"
            assert (await client.get(path, headers=bearer(admin))).json()["status"] == "uploaded"

            eager = settings.model_copy(update={"reconcile_after_seconds": 0})
            pool = await create_pool(
                RedisSettings.from_dsn(settings.redis_url or ""), default_queue_name=settings.queue_name
            )
            try:
                await pool.enqueue_job("reconcile")
            finally:
                await pool.aclose()
            await run_worker_until_idle(eager)
            assert (await client.get(path, headers=bearer(admin))).json()["status"] == "ready"


@pytest.mark.parametrize("function", ["check_revision", "prepare_print"])
async def test_jobs_for_unknown_or_finished_rows_do_nothing(settings: Settings, function: str) -> None:
    pool = await create_pool(
        RedisSettings.from_dsn(settings.redis_url or ""), default_queue_name=settings.queue_name
    )
    try:
        job = await pool.enqueue_job(function, "00000000-0000-4000-8000-000000000000")
        assert job is not None
        assert await job.status() is JobStatus.queued
        await run_worker_until_idle(settings)  # fails the test if any job failed
        # Ran and left nothing behind: these jobs keep no result, so the id is free for the next wake-up.
        assert await job.status() is JobStatus.not_found
    finally:
        await pool.aclose()
