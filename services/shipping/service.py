"""Shipping a printed part: book its courier once, then follow the parcel by the courier's reports.

Booking runs in three steps, so that no courier call ever happens inside a transaction and a killed worker
never books twice:

1. ``begin_booking`` (a transaction): the printed order gets its shipment row, whose id makes the
   idempotency key every booking attempt sends;
2. the courier call itself (``workers.jobs.shipping.ship_order``): a retry after a crash or a timeout sends
   the same key, and the courier answers with the first booking;
3. ``record_booking`` or ``park`` (a transaction): the label and tracking number, or the courier's refusal
   as a reason an operator can read (the order is flagged ``needs_attention``).

Tracking updates (``apply_tracking``) add the courier's events to the shipment and fold all of them into
where the parcel is (``services.shipping.tracking``): arrival order never matters, and the order only ever
moves forward, to ``shipped`` once the courier has the parcel and ``delivered`` at the door.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from parts_catalog.reports import PartFacts
from parts_catalog.sqltypes import utcnow
from services.couriers.ports import Booking, BookingRequest, Parcel, Place, Tracking
from services.db import serialize_writes
from services.errors import Conflict, NotFound
from services.factories.models import Site
from services.orders.models import Order
from services.orders.service import OrderService
from services.orders.states import OrderStatus
from services.queue import enqueue_after_commit
from services.shipping.models import Shipment, ShipmentEvent, ShipmentStatus
from services.shipping.repository import ShipmentRepository
from services.shipping.schemas import ShipmentOut
from services.shipping.tracking import NEEDS_ATTENTION, Observed, fold

SHIP_ORDER = "ship_order"


def enqueue_shipping(session: AsyncSession, order_id: uuid.UUID) -> None:
    """After the commit, book the printed order's courier (``workers.jobs.shipping.ship_order``)."""
    enqueue_after_commit(session, SHIP_ORDER, str(order_id), job_id=f"{SHIP_ORDER}:{order_id}")


S = OrderStatus
# Packaging around a part, in each dimension and in weight.
_PADDING_MM = 20.0
_PACKAGING_G = 50.0
_ATTENTION_FROM_TRACKING = frozenset(status.value for status in NEEDS_ATTENTION)


@dataclass(frozen=True, slots=True, kw_only=True)
class Label:
    """A shipment's label as the courier made it, and the name it is downloaded under."""

    pdf: bytes
    filename: str


@dataclass(frozen=True, slots=True)
class BookingTask:
    shipment_id: uuid.UUID
    order_id: uuid.UUID
    courier: str
    attempt: int
    request: BookingRequest


def _place(name: str, address: dict[str, Any], lat: float, lon: float, **contact: Any) -> Place:
    return Place(
        name=name,
        lines=tuple(address.get("lines") or ()),
        city=address.get("city", ""),
        postal_code=address.get("postal_code", ""),
        country=address.get("country", ""),
        latitude=lat,
        longitude=lon,
        **contact,
    )


def _destination(order: Order) -> Place:
    contact = order.contact
    return _place(
        contact["name"],
        order.address,
        order.destination_lat,
        order.destination_lon,
        phone=contact.get("phone", ""),
        email=contact.get("email"),
    )


def _origin(site: Site) -> Place:
    return _place(site.name, site.address, site.latitude, site.longitude, company=site.name)


class ShippingService:
    def __init__(self, orders: OrderService) -> None:
        self.orders = orders
        self.session = orders.session
        self.repo = ShipmentRepository(orders.session)

    # --- booking -----------------------------------------------------------------------------------------

    async def begin_booking(
        self, order_id: uuid.UUID, *, max_attempts: int, now: datetime | None = None
    ) -> BookingTask | None:
        """The next booking attempt for a printed order, or None when there is nothing to book.

        A shipment whose booking has begun ``max_attempts`` times is parked instead: a failure that is no
        courier error (a worker killed mid-call, a booking our tables cannot store) would otherwise be
        woken by the reconciler and tried again for ever."""
        now = now or utcnow()
        await serialize_writes(self.session)
        order = await self.orders.repo.order(order_id, for_update=True)
        if order is None or order.site_id is None:
            return None
        site = await self.session.get(Site, order.site_id)
        assert site is not None  # orders.site_id is a foreign key
        shipment = await self.repo.current(order_id, for_update=True)
        if shipment is None:
            if order.status is not S.PRINTED:
                return None
            shipment = await self._open(order, site, now=now)
        if shipment.status is not ShipmentStatus.BOOKING:
            return None
        if site.courier != "local" and not site.address:
            await self._park(
                order,
                shipment,
                code="origin_address_missing",
                message=(f"site {site.slug} has no address; couriers other than `local` need one"),
                now=now,
            )
            return None
        if shipment.attempts >= max_attempts:
            await self._park(
                order,
                shipment,
                code="attempts_exhausted",
                message=f"{shipment.attempts} booking attempts began and none recorded its end (each failed "
                "with an error that is no courier's, or its worker was killed): see the worker's log",
                now=now,
            )
            return None
        shipment.attempts += 1
        shipment.updated_at = now
        await self.session.flush()
        return BookingTask(
            shipment_id=shipment.id,
            order_id=order.id,
            courier=shipment.courier,
            attempt=shipment.attempts,
            request=BookingRequest(
                idempotency_key=shipment.idempotency_key,
                reference=str(order.id),
                origin=_origin(site),
                destination=_destination(order),
                parcel=Parcel(**shipment.parcel),
                service=order.service_level,
                ready_at=now,
            ),
        )

    async def _open(self, order: Order, site: Site, *, now: datetime) -> Shipment:
        shipment_id = uuid.uuid4()
        shipment = Shipment(
            id=shipment_id,
            order_id=order.id,
            site_id=site.id,
            courier=site.courier,
            status=ShipmentStatus.BOOKING,
            idempotency_key=f"spareflow-shipment-{shipment_id}",
            parcel=await self._parcel(order),
            created_at=now,
            updated_at=now,
        )
        self.session.add(shipment)
        await self.session.flush()
        return shipment

    async def _parcel(self, order: Order) -> dict[str, float]:
        """What the site measured, else what the slicer expected; the part's size plus packaging."""
        weight = 0.0
        if order.print_job_id is not None:
            view = await self.orders.printing.job_view(order.print_job_id)
            measured = (view.job.completion or {}).get("part_weight_g")
            sliced = view.artifact.filament_g if view.artifact else 0.0
            weight = float(measured if measured is not None else sliced)
        revision = await self.orders.catalog.revision(order.revision_id)
        size = PartFacts.of(revision).size
        length, width, height = sorted((float(v) + _PADDING_MM for v in size), reverse=True)
        return {
            "weight_g": round(weight * order.quantity + _PACKAGING_G, 1),
            "length_mm": round(length, 1),
            "width_mm": round(width, 1),
            # Copies stack: a parcel of several grows in its smallest dimension.
            "height_mm": round(_PADDING_MM + (height - _PADDING_MM) * order.quantity, 1),
        }

    async def record_booking(
        self, shipment_id: uuid.UUID, booking: Booking, *, now: datetime | None = None
    ) -> None:
        """Store what the courier confirmed. Idempotent: a shipment already booked is left alone."""
        now = now or utcnow()
        order, shipment = await self._locked(shipment_id)
        if shipment is None or order is None or shipment.status is not ShipmentStatus.BOOKING:
            return
        shipment.status = ShipmentStatus.BOOKED
        shipment.tracking_number = booking.tracking_number
        shipment.courier_shipment_id = booking.courier_shipment_id
        shipment.service = booking.service
        shipment.label_pdf = booking.label_pdf
        shipment.pickup_from, shipment.pickup_until = booking.pickup_from, booking.pickup_until
        shipment.estimated_delivery_at = booking.estimated_delivery_at
        shipment.booked_at = shipment.updated_at = now
        shipment.last_error = shipment.attention_reason = None
        data: dict[str, Any] = {
            "courier": shipment.courier,
            "service": booking.service,
            "tracking_number": booking.tracking_number,
            "pickup_from": booking.pickup_from.isoformat() if booking.pickup_from else None,
            "pickup_until": booking.pickup_until.isoformat() if booking.pickup_until else None,
            "estimated_delivery_at": (
                booking.estimated_delivery_at.isoformat() if booking.estimated_delivery_at else None
            ),
            "attempts": shipment.attempts,
        }
        self.orders.note(order, "shipment_booked", at=now, data=data)
        if order.needs_attention is not None and order.needs_attention.startswith("booking_"):
            self.orders.flag(order, None, at=now)
        if booking.estimated_delivery_at is not None:
            order.eta = booking.estimated_delivery_at
        await self.session.flush()

    async def park(
        self, shipment_id: uuid.UUID, *, code: str, message: str, now: datetime | None = None
    ) -> None:
        """The courier refused (or kept failing): stop retrying and flag the order for an operator."""
        now = now or utcnow()
        order, shipment = await self._locked(shipment_id)
        if shipment is None or order is None or shipment.status is not ShipmentStatus.BOOKING:
            return
        await self._park(order, shipment, code=code, message=message, now=now)

    async def _park(
        self, order: Order, shipment: Shipment, *, code: str, message: str, now: datetime
    ) -> None:
        shipment.status = ShipmentStatus.NEEDS_ATTENTION
        shipment.attention_reason = code[:64]
        shipment.last_error = message[:500]
        shipment.updated_at = now
        data = {
            "courier": shipment.courier,
            "code": code,
            "message": message[:500],
            "attempts": shipment.attempts,
        }
        self.orders.flag(order, f"booking_{code}"[:64], at=now, data=data)
        await self.session.flush()

    async def retry_booking(self, shipment_id: uuid.UUID, *, now: datetime | None = None) -> Shipment:
        """Operators: book a parked shipment again (after fixing the site's address, say)."""
        now = now or utcnow()
        order, shipment = await self._locked(shipment_id)
        if shipment is None or order is None:
            raise NotFound("no such shipment", code="shipment_not_found")
        if shipment.status is not ShipmentStatus.NEEDS_ATTENTION:
            raise Conflict(
                f"a shipment that is {shipment.status} is not waiting for an operator",
                code="shipment_not_parked",
                details={"status": shipment.status.value},
            )
        site = await self.session.get(Site, shipment.site_id)
        if site is not None:
            shipment.courier = site.courier  # the operator may have changed the site's courier
        shipment.status = ShipmentStatus.BOOKING
        shipment.attempts = 0
        shipment.updated_at = now
        enqueue_shipping(self.session, order.id)
        await self.session.flush()
        return shipment

    async def _locked(self, shipment_id: uuid.UUID) -> tuple[Order | None, Shipment | None]:
        await serialize_writes(self.session)
        found = await self.repo.shipment(shipment_id)
        if found is None:
            return None, None
        return await self._lock(found)

    async def _lock(self, found: Shipment) -> tuple[Order, Shipment]:
        """The order, then its shipment, locked in that order (as everywhere that touches both); the
        caller has taken SQLite's write lock. Neither orders nor shipments are ever deleted."""
        order = await self.orders.repo.order(found.order_id, for_update=True)
        shipment = await self.repo.shipment(found.id, for_update=True)
        assert order is not None
        assert shipment is not None
        return order, shipment

    # --- tracking ----------------------------------------------------------------------------------------

    async def apply_tracking(self, courier: str, tracking: Tracking, *, now: datetime | None = None) -> str:
        """Add a courier's report to its shipment and move the order on. Returns what happened, in a word
        (``unknown_tracking_number`` included: the caller never tells a partner which numbers exist)."""
        now = now or utcnow()
        await serialize_writes(self.session)
        found = await self.repo.by_tracking(courier, tracking.tracking_number)
        if found is None:
            return "unknown_tracking_number"
        order, shipment = await self._lock(found)
        known = {(e.status, e.occurred_at) for e in await self.repo.events(shipment.id)}
        added = 0
        for event in tracking.events:
            if (event.status, event.occurred_at) in known:
                continue
            known.add((event.status, event.occurred_at))
            self.session.add(
                ShipmentEvent(
                    shipment_id=shipment.id,
                    status=event.status,
                    occurred_at=event.occurred_at,
                    description=event.description[:500],
                    location=event.location[:200],
                    courier_code=event.courier_code[:64],
                    received_at=now,
                )
            )
            added += 1
        if not added:
            return "no_new_events"
        state = fold(Observed(status, at) for status, at in known)
        shipment.tracking_status = state.status
        shipment.picked_up_at, shipment.delivered_at = state.picked_up_at, state.delivered_at
        if tracking.estimated_delivery_at is not None:
            shipment.estimated_delivery_at = tracking.estimated_delivery_at
        shipment.updated_at = now
        self._follow(order, shipment, now=now)
        try:
            await self.session.flush()
        except IntegrityError:
            # The same event, stored meanwhile by a concurrent report (SQLite has no row lock to wait on).
            raise Conflict("tracking event stored concurrently", code="tracking_conflict") from None
        return f"{added}_events:{state.status.value}"

    def _follow(self, order: Order, shipment: Shipment, *, now: datetime) -> None:
        data = {"courier": shipment.courier, "tracking_number": shipment.tracking_number}
        if shipment.picked_up_at is not None and order.status is S.PRINTED:
            self.orders.advance(
                order, S.SHIPPED, at=now, data={**data, "picked_up_at": shipment.picked_up_at.isoformat()}
            )
        if shipment.delivered_at is not None and order.status is S.SHIPPED:
            self.orders.advance(
                order, S.DELIVERED, at=now, data={**data, "delivered_at": shipment.delivered_at.isoformat()}
            )
            order.eta = shipment.delivered_at
        elif order.status is S.SHIPPED and shipment.estimated_delivery_at is not None:
            order.eta = shipment.estimated_delivery_at
        status = shipment.tracking_status.value
        if status in _ATTENTION_FROM_TRACKING and order.status is not S.DELIVERED:
            self.orders.flag(order, status, at=now, data=data)
        elif order.needs_attention in _ATTENTION_FROM_TRACKING or (
            order.status is S.DELIVERED and order.needs_attention is not None
        ):
            self.orders.flag(order, None, at=now, data=data)

    # --- reading -----------------------------------------------------------------------------------------

    async def of_order(self, order_id: uuid.UUID, *, visible_to: uuid.UUID | None) -> Shipment:
        await self.orders.get(order_id, visible_to=visible_to)
        shipment = await self.repo.current(order_id)
        if shipment is None:
            raise NotFound("the order has no shipment yet", code="shipment_not_found")
        return shipment

    async def label(self, order_id: uuid.UUID, *, visible_to: uuid.UUID | None) -> Label:
        """The order's shipping label.

        Raises NotFound: the order has no shipment yet, or its shipment no label yet (``label_not_ready``).
        """
        shipment = await self.of_order(order_id, visible_to=visible_to)
        if shipment.label_pdf is None:
            raise NotFound("the shipment has no label yet", code="label_not_ready")
        return Label(pdf=shipment.label_pdf, filename=f"label-{shipment.tracking_number or shipment.id}.pdf")

    async def describe(self, shipment: Shipment) -> ShipmentOut:
        """The shipment with its tracking events, as the API shows it."""
        return ShipmentOut.of(shipment, list(await self.repo.events(shipment.id)))
