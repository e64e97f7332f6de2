"""Factory housekeeping: leases that ran out go back to the queue; sites that fell silent go offline.

Each job and each site is handled in a transaction of its own, and a failure is contained to it
(``services.loops``), so one that cannot be handled now never holds up the others; the next run takes up
whatever is left.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from parts_catalog.sqltypes import utcnow
from services.db import transaction
from services.fulfilment.leases import FactoryJobs
from services.fulfilment.repository import FactoryJobRepository
from services.loops import ItemFailures
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
    failures = ItemFailures[uuid.UUID]("watch_factories")
    for job_id in lapsed:
        with failures.item(job_id):
            async with order_service(res) as orders:
                jobs = FactoryJobs.configured(orders, settings)
                counts["leases_expired"] += await jobs.expire(job_id, now=now)
    for site_id in silent:
        with failures.item(site_id):
            async with order_service(res) as orders:
                silenced = await FactoryJobs.configured(orders, settings).silence(site_id, now=now)
            if silenced:
                counts["sites_silenced"] += 1
                log.warning("site %s went silent; it is offline until its agents call again", site_id)
    counts["failed"] = len(failures.errors)
    return counts
