"""Housekeeping: remove what failed uploads and jobs left behind, and expired idempotency keys."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from parts_catalog.sqltypes import utcnow
from services.blob_sweeper import sweep_orphan_blobs as sweep_blobs
from services.blob_sweeper import sweep_staging
from services.db import transaction
from services.idempotency.store import IdempotencyStore
from services.workers.context import resources

log = logging.getLogger(__name__)


async def sweep_orphan_blobs(ctx: dict[str, Any]) -> dict[str, int]:
    """Delete unreferenced blobs and stale staging files older than the grace period. Idempotent."""
    res = resources(ctx)
    grace = res.settings.orphan_blob_grace_seconds
    async with transaction(res.sessions) as session:
        result = await sweep_blobs(session, res.blobs, older_than=utcnow() - timedelta(seconds=grace))
    staged = await sweep_staging(res.settings.staging_dir, grace_seconds=grace)
    log.info(
        "orphan sweep: %d blobs examined, %d deleted, %d stale staging files",
        result.examined,
        len(result.deleted),
        staged,
    )
    return {"examined": result.examined, "deleted": len(result.deleted), "staging_removed": staged}


async def purge_idempotency_keys(ctx: dict[str, Any]) -> int:
    """Forget idempotency keys past their retention (``idempotency_retention_hours``)."""
    res = resources(ctx)
    async with transaction(res.sessions) as session:
        purged = await IdempotencyStore.purge_expired(session, now=utcnow())
    log.info("purged %d expired idempotency keys", purged)
    return purged
