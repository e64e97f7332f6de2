"""Shipping jobs: book a printed order's courier, apply partners' tracking webhooks, drive the built-in
courier, and find work whose wake-up call was lost.

Booking follows ``services.shipping.service``: the courier is called between two transactions, with the
shipment's idempotency key, so a retry after a timeout or a killed worker gets the first booking back.
Retryable courier errors back off and retry up to ``max_job_attempts``; a refusal, or retries used up, parks
the shipment for an operator with the courier's reason.

Inbound webhooks are bounded the same way: each attempt is counted before it starts, and an event that fails
``max_job_attempts`` times is parked with its error (``services.webhooks.inbound``).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

from arq import Retry

from parts_catalog.sqltypes import utcnow
from services.couriers.ports import CourierError
from services.db import transaction
from services.observability.logs import bind
from services.observability.metrics import COURIER_ERRORS
from services.shipping.repository import ShipmentRepository
from services.shipping.service import ShippingService, enqueue_shipping
from services.webhooks.inbound import InboundWebhooks, wake
from services.workers.context import resources
from services.workers.jobs.orders import order_service

log = logging.getLogger(__name__)
BATCH = 500


def _backoff(attempt: int) -> float:
    # 10 s, 40 s, 90 s, ...: a courier's API outage is usually over within minutes.
    return 10.0 * attempt**2


async def ship_order(ctx: dict[str, Any], order_id: str) -> str:
    res = resources(ctx)
    oid = uuid.UUID(order_id)
    bind(order_id=oid)
    async with order_service(res) as orders:
        task = await ShippingService(orders).begin_booking(oid, max_attempts=res.settings.max_job_attempts)
    if task is None:
        return "nothing to do"
    try:
        courier = res.couriers.get(task.courier)
        request = task.request
        # The service level routing promised, where the courier has one of that name; else its fastest.
        if request.service not in (await courier.capabilities()).services:
            request = replace(request, service=None)
        booking = await courier.book(request)
    except CourierError as exc:
        COURIER_ERRORS.labels(task.courier, "book", exc.code).inc()
        if exc.retryable and task.attempt < res.settings.max_job_attempts:
            log.warning(
                "booking %s with %s failed (attempt %d): %s",
                task.shipment_id,
                task.courier,
                task.attempt,
                exc,
            )
            raise Retry(defer=_backoff(task.attempt)) from exc
        async with order_service(res) as orders:
            await ShippingService(orders).park(task.shipment_id, code=exc.code, message=str(exc))
        log.warning("shipment %s parked: %s %s", task.shipment_id, exc.code, exc)
        return f"parked: {exc.code}"
    async with order_service(res) as orders:
        await ShippingService(orders).record_booking(task.shipment_id, booking)
    return f"booked: {booking.tracking_number}"


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
            raise Retry(defer=_backoff(attempt)) from exc
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
