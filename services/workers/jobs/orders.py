"""Order jobs: re-route a site's orders, the SLA watchdog, and the batch re-optimiser.

Each order is handled in a transaction of its own, its failure contained to it (``services.loops``): one
order that cannot be moved or checked never holds up or rolls back the others, and a killed worker leaves
every order either moved or untouched (the next run or the reconciler takes up the rest).
"""

from __future__ import annotations

import logging
import uuid
from contextlib import AbstractAsyncContextManager
from typing import Any

from parts_catalog.sqltypes import utcnow
from services.db import transaction
from services.factories.repository import SiteRepository
from services.factories.schemas import SiteStatus
from services.factories.service import REROUTE_SITE
from services.fulfilment.unit_of_work import order_transaction
from services.loops import ItemFailures
from services.orders.reoptimize import reoptimize
from services.orders.repository import OrderRepository
from services.orders.reroute_failures import record_reroute_failure
from services.orders.service import OrderService
from services.orders.watchdog import watch
from services.workers.context import WorkerResources, resources

log = logging.getLogger(__name__)
# Per run: a site with more unstarted orders is finished by the next run (the reconciler re-enqueues it).
BATCH = 2000


def order_service(res: WorkerResources) -> AbstractAsyncContextManager[OrderService]:
    return order_transaction(
        res.sessions,
        res.queue,
        res.blobs,
        archive_limits=res.settings.archive_limits,
        snapshots=res.snapshots,
    )


async def reroute_site(ctx: dict[str, Any], site_id: str) -> dict[str, int]:
    """Move every unstarted order of an offline site elsewhere. Idempotent: a moved order is no longer the
    site's, and a site back online keeps its orders. An order whose re-route fails is left for the next
    run (the reconciler re-enqueues the site) and flagged for an operator after ``max_job_attempts``."""
    res = resources(ctx)
    sid = uuid.UUID(site_id)
    async with transaction(res.sessions) as session:
        site = await SiteRepository(session).site(sid)
        if site is None or site.status is not SiteStatus.OFFLINE:
            return {"rerouted": 0, "failed": 0}
        order_ids = await OrderRepository(session).stranded(sid, limit=BATCH)
    counts = {"rerouted": 0, "failed": 0, "errors": 0, "flagged": 0}
    failures = ItemFailures[uuid.UUID](REROUTE_SITE)
    for order_id in order_ids:
        with failures.item(order_id):
            async with order_service(res) as orders:
                order = await orders.reroute(order_id, reason="site_offline")
            if order is not None:
                counts["failed" if order.failure_code else "rerouted"] += 1
    # Recorded once the others are moved; bounded by max_job_attempts (services.orders.reroute_failures).
    for order_id, error in failures.errors.items():
        counts["errors"] += 1
        async with order_service(res) as orders:
            flagged = await record_reroute_failure(
                orders, order_id, error=error, max_attempts=res.settings.max_job_attempts
            )
        if flagged:
            counts["flagged"] += 1
            log.error("order %s flagged for an operator: re-routing it failed repeatedly", order_id)
    log.info("site %s offline: %s", site_id, counts)
    return counts


async def watch_orders(ctx: dict[str, Any]) -> dict[str, int]:
    """The SLA watchdog: flag unstarted orders whose ETA passes their promise; re-route them when another
    site can still deliver in time."""
    res = resources(ctx)
    now = utcnow()
    async with transaction(res.sessions) as session:
        order_ids = await OrderRepository(session).unstarted(limit=BATCH)
    counts = {"checked": 0, "at_risk": 0, "rerouted": 0}
    failures = ItemFailures[uuid.UUID]("watch_orders")
    for order_id in order_ids:
        with failures.item(order_id):
            async with order_service(res) as orders:
                outcome = await watch(orders, order_id, now=now)
            counts["checked"] += 1
            counts["at_risk"] += outcome.flagged
            counts["rerouted"] += outcome.rerouted
    counts["failed"] = len(failures.errors)
    if counts["at_risk"] or counts["rerouted"]:
        log.warning("SLA watchdog: %s", counts)
    return counts


async def reoptimize_orders(ctx: dict[str, Any]) -> dict[str, float]:
    """The batch re-optimiser (``services.orders.reoptimize``): apply the moves that hold up."""
    res = resources(ctx)
    report, _ = await reoptimize(
        lambda: order_service(res), min_gain=res.settings.reoptimize_min_gain, apply=True, now=utcnow()
    )
    return {"orders": report.orders, "proposed": report.proposed, "applied": report.applied}
