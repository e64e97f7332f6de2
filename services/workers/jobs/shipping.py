"""Shipping jobs: book a printed order's courier, apply partners' tracking webhooks, drive the built-in
courier, and find work whose wake-up call was lost.

Booking follows ``services.shipping.service``: the courier is called between two transactions, with the
shipment's idempotency key, so a retry after a timeout or a killed worker gets the first booking back.
Retryable courier errors back off and retry up to ``max_job_attempts``; a refusal, or retries used up, parks
the shipment for an operator with the courier's reason.
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
from services.orders.service import enqueue_shipping
from services.queue import enqueue_after_commit
from services.shipping.repository import ShipmentRepository
from services.shipping.service import ShippingService
from services.webhooks.inbound import PROCESS_INBOUND, InboundWebhooks
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
        task = await ShippingService(orders).begin_booking(oid)
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
    res = resources(ctx)
    async with order_service(res) as orders:
        inbound = InboundWebhooks.configured(orders.session, res.settings)
        return await inbound.process(uuid.UUID(inbound_id), ShippingService(orders))


async def drive_local_courier(ctx: dict[str, Any]) -> int:
    """The built-in courier reports what came due (``services.couriers.local``)."""
    return await resources(ctx).couriers.local.drive()


async def reconcile_shipping(ctx: dict[str, Any]) -> dict[str, int]:
    """Re-enqueue bookings and webhooks the database says are pending; forget old webhook ids."""
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
            enqueue_after_commit(
                session, PROCESS_INBOUND, str(inbound_id), job_id=f"{PROCESS_INBOUND}:{inbound_id}"
            )
        purged = await inbound.purge(now=now)
    return {"bookings": len(orders), "webhooks": len(pending), "purged": purged}
