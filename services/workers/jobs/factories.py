"""Factory housekeeping: leases that ran out go back to the queue; sites that fell silent go offline.

Each job and each site is handled in a transaction of its own, so one that cannot be handled now never
holds up the others; the next run takes up whatever is left.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from parts_catalog.sqltypes import utcnow
from services.db import transaction
from services.fulfilment.leases import FactoryJobs
from services.fulfilment.repository import FactoryJobRepository
from services.workers.context import resources
from services.workers.jobs.orders import order_service

log = logging.getLogger(__name__)
BATCH = 1000


async def watch_factories(ctx: dict[str, Any]) -> dict[str, int]:
    """Return lapsed leases' jobs to ``ready``, then take sites silent past ``site_silence_seconds``
    offline (which re-routes their unstarted orders, those whose leases just lapsed among them)."""
    res = resources(ctx)
    settings = res.settings
    now = utcnow()
    async with transaction(res.sessions) as session:
        repo = FactoryJobRepository(session)
        lapsed = await repo.lapsed_leases(now=now, limit=BATCH)
        silent = await repo.silent_sites(seen_before=now - timedelta(seconds=settings.site_silence_seconds))
    counts = {"leases_expired": 0, "sites_silenced": 0}
    for job_id in lapsed:
        async with order_service(res) as orders:
            counts["leases_expired"] += await FactoryJobs.configured(orders, settings).expire(job_id, now=now)
    for site_id in silent:
        async with order_service(res) as orders:
            if await FactoryJobs.configured(orders, settings).silence(site_id, now=now):
                counts["sites_silenced"] += 1
                log.warning("site %s went silent; it is offline until its agents call again", site_id)
    return counts
