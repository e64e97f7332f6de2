"""The orphan sweep runs as an arq job on the real Redis and removes only what nothing references."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import httpx
from arq import create_pool
from arq.connections import RedisSettings

from services.config import Settings
from services.workers.settings import build_worker
from tests.builders import make_account, make_admin_token, make_part, model_bytes, upload


def _age(path: Path, seconds: int) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


async def test_sweep_job_deletes_old_orphans_only(client: httpx.AsyncClient, settings: Settings) -> None:
    admin = await make_admin_token(settings)
    org = await make_account(client, admin, "organizations")
    part = await make_part(client, admin, organization_id=org["id"])
    kept = (await upload(client, admin, part["id"], model_bytes())).json()["sha256"]

    blobs = settings.resolved_blob_dir
    orphans = {}
    for label in ("old", "young"):
        data = os.urandom(100)
        sha = hashlib.sha256(data).hexdigest()
        path = blobs / sha[:2] / sha[2:4] / sha
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        orphans[label] = path
    stale_staging = settings.staging_dir / "dead.part"
    stale_staging.write_bytes(b"half an upload")
    grace = settings.orphan_blob_grace_seconds
    for path in (orphans["old"], stale_staging, blobs / kept[:2] / kept[2:4] / kept):
        _age(path, grace + 60)

    pool = await create_pool(
        RedisSettings.from_dsn(settings.redis_url or ""), default_queue_name=settings.queue_name
    )
    try:
        job = await pool.enqueue_job("sweep_orphan_blobs")
        assert job is not None
        worker = build_worker(settings, settings.redis_url or "", burst=True, handle_signals=False)
        try:
            await worker.async_run()
        finally:
            await worker.close()
        result = await job.result(timeout=10)
    finally:
        await pool.aclose()

    assert result == {"examined": 2, "deleted": 1, "staging_removed": 1}
    assert not orphans["old"].exists()
    assert orphans["young"].exists()
    assert (blobs / kept[:2] / kept[2:4] / kept).exists()
    assert not stale_staging.exists()
