"""Housekeeping: remove what failed uploads left behind."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from parts_catalog.service import CatalogService
from parts_catalog.sqltypes import utcnow
from services.db import transaction
from services.workers.context import resources

log = logging.getLogger(__name__)


def _remove_stale_staging(staging_dir: Path, older_than_epoch: float) -> int:
    removed = 0
    for path in staging_dir.glob("*.part"):
        try:
            if path.stat().st_mtime < older_than_epoch:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


async def sweep_orphan_blobs(ctx: dict[str, Any]) -> dict[str, int]:
    """Delete model blobs no revision references, and staging files of uploads that never finished.

    Idempotent; only touches files older than the configured grace period, so uploads in flight survive.
    """
    res = resources(ctx)
    grace = res.settings.orphan_blob_grace_seconds
    async with transaction(res.sessions) as session:
        catalog = CatalogService(session, res.blobs, archive_limits=res.settings.archive_limits)
        result = await catalog.sweep_orphan_blobs(older_than=utcnow() - timedelta(seconds=grace))
    staged = await asyncio.to_thread(_remove_stale_staging, res.settings.staging_dir, time.time() - grace)
    log.info(
        "orphan sweep: %d blobs examined, %d deleted, %d stale staging files",
        result.examined,
        len(result.deleted),
        staged,
    )
    return {"examined": result.examined, "deleted": len(result.deleted), "staging_removed": staged}
