"""Shipping jobs: book a printed order's courier, apply partners' tracking webhooks, drive the built-in
courier, and find work whose wake-up call was lost.

Booking is ``services.fulfilment.booking``: a retryable courier error backs off here (arq's Retry), up to
``max_job_attempts``; a refusal, or retries used up, parks the shipment for an operator.

Inbound webhooks are bounded the same way: each attempt is counted before it starts, and an event that fails
``max_job_attempts`` times is parked with its error (``services.webhooks.inbound.service``).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from arq import Retry

from parts_catalog.sqltypes import utcnow
from services.db import transaction
from services.fulfilment.booking import Booked, Parked, TryLater, book_courier
from services.observability.logs import bind
from services.queue import backoff_seconds
from services.shipping.repository import ShipmentRepository
from services.shipping.service import ShippingService, enqueue_shipping
from services.webhooks.inbound.service import InboundWebhooks, wake
from services.workers.context import resources
from services.workers.jobs.orders import order_service

log = logging.getLogger(__name__)
BATCH = 500


async def ship_order(ctx: dict[str, Any], order_id: str) -> str:
    """Book the printed order's courier (``services.fulfilment.booking``)."""
    res = resources(ctx)
    oid = uuid.UUID(order_id)
    bind(order_id=oid)
    outcome = await book_courier(
        lambda: order_service(res), res.couriers, oid, max_attempts=res.settings.max_job_attempts
    )
    match outcome:
        case None:
            return "nothing to do"
        case TryLater(attempt=attempt, error=error):
            raise Retry(defer=backoff_seconds(attempt)) from error
        case Parked(code=code):
            return f"parked: {code}"
        case Booked(tracking_number=number):
            return f"booked: {number}"


async def process_inbound_webhook(ctx: dict[str, Any], inbound_id: str) -> str:
    """Apply a partner's stored event. What could not be applied was refused on receipt, so a failure here
    is unforeseen (a bug, a database that is away): it backs off and retries up to ``max_job_attempts``,
    then the event is parked with its error for an operator (``POST /webhooks/inbound/{id}/retry``)."""
    res = resources(ctx)
    iid = uuid.UUID(inbound_id)
    max_attempts = res.settings.max_job_attempts
    async with transaction(res.sessions) as session:
        attempt = await InboundWebhooks.configured(session, res.settings).begin(
            iid, max_attempts=max_attempts
        )
    if attempt is None:
        return "nothing to do"
    try:
        async with order_service(res) as orders:
            inbound = InboundWebhooks.configured(orders.session, res.settings)
            return await inbound.process(iid, ShippingService(orders))
    except Exception as exc:
        # Any failure counts, whatever its class: only a bounded number of attempts keeps an event that
        # fails every time from being retried for ever.
        error = f"{type(exc).__name__}: {exc}"
        park = attempt >= max_attempts
        async with transaction(res.sessions) as session:
            await InboundWebhooks.configured(session, res.settings).fail(iid, error=error, park=park)
        if not park:
            log.warning("inbound webhook %s failed (attempt %d): %s", iid, attempt, error)
            raise Retry(defer=backoff_seconds(attempt)) from exc
        log.error("inbound webhook %s parked after %d attempts: %s", iid, attempt, error)
        return f"parked: {error}"


async def drive_local_courier(ctx: dict[str, Any]) -> int:
    """The built-in courier reports what came due (``services.couriers.providers.local``)."""
    return await resources(ctx).couriers.local.drive()


async def reconcile_shipping(ctx: dict[str, Any]) -> dict[str, int]:
    """Re-enqueue bookings and webhooks the database says are pending (parked ones wait for an operator);
    forget old webhook ids."""
    res = resources(ctx)
    now = utcnow()
    cutoff = now - timedelta(seconds=res.settings.reconcile_after_seconds)
    async with transaction(res.sessions, res.queue) as session:
        orders = await ShipmentRepository(session).unbooked_orders(changed_before=cutoff, limit=BATCH)
        for order_id in orders:
            enqueue_shipping(session, order_id)
        inbound = InboundWebhooks.configured(session, res.settings)
        pending = await inbound.unprocessed(received_before=cutoff, limit=BATCH)
        for inbound_id in pending:
            wake(session, inbound_id)
        purged = await inbound.purge(now=now)
    return {"bookings": len(orders), "webhooks": len(pending), "purged": purged}
