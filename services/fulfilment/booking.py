"""Booking a printed order's courier, the step between printing and shipping.

The courier is called between two transactions (``ShippingService.begin_booking``, then ``record_booking``
or ``park``), with the shipment's idempotency key, so a retry after a timeout or a killed worker gets the
first booking back. A retryable courier error asks to be tried again later, up to ``max_attempts``; a
refusal, or retries used up, parks the shipment for an operator with the courier's reason.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace

from services.couriers.ports import CourierError
from services.couriers.registry import Couriers
from services.observability.metrics import COURIER_ERRORS
from services.orders.service import OrderService
from services.shipping.service import ShippingService

log = logging.getLogger(__name__)

OpenOrders = Callable[[], AbstractAsyncContextManager[OrderService]]


@dataclass(frozen=True, slots=True)
class Booked:
    tracking_number: str


@dataclass(frozen=True, slots=True)
class Parked:
    code: str


@dataclass(frozen=True, slots=True)
class TryLater:
    """A retryable courier error; ``attempt`` is the one that failed."""

    attempt: int
    error: CourierError


async def book_courier(
    open_orders: OpenOrders, couriers: Couriers, order_id: uuid.UUID, *, max_attempts: int
) -> Booked | Parked | TryLater | None:
    """Book the printed order's courier (module docstring); None: nothing to do (booked already, not
    printed, parked)."""
    async with open_orders() as orders:
        task = await ShippingService(orders).begin_booking(order_id, max_attempts=max_attempts)
    if task is None:
        return None
    try:
        courier = couriers.get(task.courier)
        request = task.request
        # The service level routing promised, where the courier has one of that name; else its fastest.
        if request.service not in (await courier.capabilities()).services:
            request = replace(request, service=None)
        booking = await courier.book(request)
    except CourierError as exc:
        COURIER_ERRORS.labels(task.courier, "book", exc.code).inc()
        if exc.retryable and task.attempt < max_attempts:
            log.warning(
                "booking %s with %s failed (attempt %d): %s",
                task.shipment_id,
                task.courier,
                task.attempt,
                exc,
            )
            return TryLater(attempt=task.attempt, error=exc)
        async with open_orders() as orders:
            await ShippingService(orders).park(task.shipment_id, code=exc.code, message=str(exc))
        log.warning("shipment %s parked: %s %s", task.shipment_id, exc.code, exc)
        return Parked(code=exc.code)
    async with open_orders() as orders:
        await ShippingService(orders).record_booking(task.shipment_id, booking)
    return Booked(tracking_number=booking.tracking_number)
