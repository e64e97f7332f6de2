"""Karrio's vocabulary and ours, both ways, pure: no I/O here (``gateway`` makes the calls).

Karrio's payloads as we read them (``Karrio*`` models, only the fields we use), its status tables
(``TRACKER_STATUSES``, ``SHIPMENT_STATUSES``), the bodies we send (``rate_request``, ``draft_body``, ...),
what we make of its answers (``service_options``, ``booking_from_shipment``, ``tracking_from_tracker``,
``failure`` for an error answer) and of its webhook deliveries (``parse_webhook``). How each operation of the
port uses Karrio's API is written in ``services.couriers.providers.karrio.gateway``.

An answer that lacks something we rely on raises ``Malformed``; the gateway turns it into
``CourierUnavailable`` (see its error tree). Refusals that the mapping can tell (no rate for the service
asked, a carrier's message instead of rates) raise ``CourierRejected`` directly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from services.couriers.ports import (
    Booking,
    BookingRequest,
    Capabilities,
    CourierError,
    CourierRejected,
    CourierUnavailable,
    Parcel,
    Place,
    ServiceOption,
    Tracking,
    TrackingEvent,
    TrackingStatus,
)
from services.validation import to_utc

IDEMPOTENCY_KEY_FIELD: Final = "spareflow_idempotency_key"
GENERIC_CARRIER: Final = "generic"
# The events parse_webhook reads; the rest (orders, pickups, batches) are no courier's business.
WEBHOOK_EVENTS: Final = (
    "shipment_purchased",
    "shipment_cancelled",
    "shipment_fulfilled",
    "shipment_out_for_delivery",
    "shipment_needs_attention",
    "shipment_delivery_failed",
    "tracker_created",
    "tracker_updated",
)
_PDF_MAGIC: Final = b"%PDF"

# Karrio's tracker statuses (TrackerStatus in karrio.server.core.serializers), event statuses included.
TRACKER_STATUSES: Final[Mapping[str, TrackingStatus]] = {
    "pending": TrackingStatus.PENDING,
    # Not a tracker status: the status of the event Karrio writes when a label is bought.
    "created": TrackingStatus.PENDING,
    "picked_up": TrackingStatus.PICKED_UP,
    "in_transit": TrackingStatus.IN_TRANSIT,
    # Late but still moving: the parcel's state is unchanged, only its ETA (estimated_delivery) moves.
    "delivery_delayed": TrackingStatus.IN_TRANSIT,
    "out_for_delivery": TrackingStatus.OUT_FOR_DELIVERY,
    # Waiting at a pickup point for the customer: the last leg, as for a van out for delivery; the next
    # event is the handover (delivered) or a return.
    "ready_for_pickup": TrackingStatus.OUT_FOR_DELIVERY,
    "delivered": TrackingStatus.DELIVERED,
    "delivery_failed": TrackingStatus.DELIVERY_FAILED,
    "on_hold": TrackingStatus.ON_HOLD,
    "return_to_sender": TrackingStatus.RETURN_TO_SENDER,
    "cancelled": TrackingStatus.CANCELLED,
    "unknown": TrackingStatus.UNKNOWN,
}

# Karrio's shipment statuses (ShipmentStatus), for a shipment without a tracker and for shipment_* events.
# ``draft`` (nothing bought) and ``needs_attention`` (either on_hold or delivery_delayed) have no twin.
SHIPMENT_STATUSES: Final[Mapping[str, TrackingStatus]] = {
    "created": TrackingStatus.PENDING,
    "shipped": TrackingStatus.PICKED_UP,
    "in_transit": TrackingStatus.IN_TRANSIT,
    "out_for_delivery": TrackingStatus.OUT_FOR_DELIVERY,
    "delivered": TrackingStatus.DELIVERED,
    "delivery_failed": TrackingStatus.DELIVERY_FAILED,
    "cancelled": TrackingStatus.CANCELLED,
}

# Formats Karrio itself reads in events (karrio.server.core.utils.process_events).
_DATE_FORMATS: Final = ("%Y-%m-%d", "%m/%d/%Y")
_TIME_FORMATS: Final = ("%I:%M %p", "%H:%M:%S", "%H:%M")


def tracking_status(karrio_status: str | None) -> TrackingStatus:
    """Our status for a Karrio tracker or event status; UNKNOWN for anything else."""
    return TRACKER_STATUSES.get(karrio_status or "", TrackingStatus.UNKNOWN)


# --- Karrio's payloads, the parts we read -----------------------------------------------------------------

T = TypeVar("T", bound=BaseModel)


class KarrioRate(BaseModel):
    id: str
    service: str | None = None
    total_charge: float = 0.0
    currency: str
    transit_days: int | None = None
    estimated_delivery: str | None = None


class KarrioDocument(BaseModel):
    category: str
    base64: str | None = None


class KarrioShipment(BaseModel):
    id: str
    status: str
    tracking_number: str | None = None
    tracker_id: str | None = None
    service: str | None = None
    created_at: str = ""
    metadata: dict[str, Any] = {}
    rates: list[KarrioRate] = []
    selected_rate: KarrioRate | None = None
    shipping_documents: list[KarrioDocument] = []


class KarrioTrackingEvent(BaseModel):
    date: str | None = None
    time: str | None = None
    timestamp: str | None = None
    status: str | None = None
    code: str | None = None
    description: str | None = None
    location: str | None = None


class KarrioTracker(BaseModel):
    id: str
    tracking_number: str
    status: str
    events: list[KarrioTrackingEvent] | None = None
    estimated_delivery: str | None = None


class KarrioConnection(BaseModel):
    id: str
    carrier_name: str
    carrier_id: str
    active: bool = True


class KarrioWebhook(BaseModel):
    id: str
    url: str
    enabled_events: list[str]
    disabled: bool | None = None
    secret: str


class KarrioPage(BaseModel, Generic[T]):
    next: str | None = None
    results: list[T]


class _Event(BaseModel):
    event: str
    data: dict[str, Any]


class KarrioLabel(BaseModel):
    """The answer to ``POST /v1/shipments/{id}/documents/label``."""

    base64: str


class KarrioMessage(BaseModel):
    code: str | None = None
    message: str | None = None


class KarrioRates(BaseModel):
    rates: list[KarrioRate] = []
    messages: list[KarrioMessage] = []  # what the carrier said when it gave no rate


class KarrioErrorBody(BaseModel):
    errors: list[KarrioMessage] = []
    messages: list[KarrioMessage] = []  # 424: what the carrier said
    detail: str | None = None


class Malformed(ValueError):
    """A Karrio payload lacks something we rely on or holds something we cannot read."""


# --- Pure mapping: ours -> Karrio -------------------------------------------------------------------------


def address(place: Place) -> dict[str, Any]:
    """Karrio's AddressData for a place (Karrio has no coordinates: its carriers price by address)."""
    lines = [line for line in place.lines if line.strip()]
    return {
        "person_name": place.name,
        "company_name": place.company or None,
        "address_line1": lines[0] if lines else None,
        "address_line2": ", ".join(lines[1:]) or None,
        "city": place.city,
        "postal_code": place.postal_code,
        "country_code": place.country,
        "phone_number": place.phone or None,
        "email": place.email,
    }


def parcel_data(parcel: Parcel) -> dict[str, Any]:
    # Karrio takes grams as they are, but lengths only in CM or IN.
    return {
        "weight": parcel.weight_g,
        "weight_unit": "G",
        "length": parcel.length_mm / 10,
        "width": parcel.width_mm / 10,
        "height": parcel.height_mm / 10,
        "dimension_unit": "CM",
    }


def draft_body(request: BookingRequest) -> dict[str, Any]:
    """Karrio's ShipmentData for a booking's draft: no ``service``, so Karrio rates it and buys nothing. It
    carries our reference and, in its metadata, the key that finds it again; the caller adds ``carrier_ids``.
    """
    body: dict[str, Any] = {
        "shipper": address(request.origin),
        "recipient": address(request.destination),
        "parcels": [parcel_data(request.parcel)],
        "reference": request.reference,
        "metadata": {IDEMPOTENCY_KEY_FIELD: request.idempotency_key},
        "label_type": "PDF",
    }
    if request.ready_at is not None:
        # Karrio's shipping date is a naive local "YYYY-MM-DDTHH:MM"; without it Karrio picks the next
        # business day at 10:00.
        body["options"] = {"shipping_date": request.ready_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")}
    return body


def rate_request(
    origin: Place, destination: Place, parcel: Parcel, carrier_ids: Sequence[str]
) -> dict[str, Any]:
    """Karrio's RateRequest for a parcel between two places, asked of the connections ``carrier_ids`` only."""
    return {
        "shipper": address(origin),
        "recipient": address(destination),
        "parcels": [parcel_data(parcel)],
        "carrier_ids": list(carrier_ids),
    }


def webhook_subscription(url: str, events: Sequence[str], description: str) -> dict[str, object]:
    """Karrio's WebhookData: POST ``events`` to ``url``."""
    return {"url": url, "enabled_events": list(events), "description": description}


def webhook_update(events: Sequence[str], description: str) -> dict[str, object]:
    """What changes a subscription to deliver ``events`` again, enabled."""
    return {"enabled_events": list(events), "disabled": False, "description": description}


def generic_connection() -> dict[str, Any]:
    """A connection of the generic carrier. It needs no secret; Karrio requires ``display_name`` and
    ``custom_carrier_name`` (which its rates then show as their ``carrier_name``)."""
    return {
        "carrier_name": GENERIC_CARRIER,
        "carrier_id": "spareflow-generic",
        "credentials": {"display_name": "Spareflow courier", "custom_carrier_name": "spareflow_generic"},
    }


# --- Pure mapping: Karrio -> ours -------------------------------------------------------------------------


def capabilities(services: object, *, name: str, carrier_name: str) -> Capabilities:
    """What a courier through ``carrier_name`` can do, from Karrio's list of that carrier's services
    (``GET /v1/carriers/{carrier_name}/services``: service name -> carrier code).

    Raises:
        CourierUnavailable: the list is unreadable.
    """
    if not isinstance(services, dict) or not all(isinstance(service, str) for service in services):
        raise CourierUnavailable(f"Karrio listed {carrier_name} services unreadably: {services!r:.200}")
    return Capabilities(
        name=name,
        services=tuple(services),
        labels=True,
        tracking_webhooks=True,
        # Karrio refuses to cancel a shipment once its tracker says it moved (409).
        cancel_after_pickup=False,
    )


def service_options(rates: KarrioRates) -> list[ServiceOption]:
    """Our options for Karrio's rates; a rate that names no service is none.

    Raises:
        CourierRejected: no rate, and the carrier said why (``courier_carrier_error``).
    """
    if not rates.rates and rates.messages:
        said = "; ".join(f"{m.code}: {m.message}" for m in rates.messages)
        raise CourierRejected(f"Karrio found no rate: {said}", code="courier_carrier_error")
    return [service_option(rate) for rate in rates.rates if rate.service is not None]


def service_option(rate: KarrioRate) -> ServiceOption:
    if rate.service is None:
        raise Malformed(f"rate {rate.id} names no service")
    return ServiceOption(
        service=rate.service,
        transit_hours=rate.transit_days * 24.0 if rate.transit_days is not None else None,
        cost=rate.total_charge,
        currency=rate.currency,
    )


def choose_rate(rates: Sequence[KarrioRate], service: str | None) -> KarrioRate:
    """The rate to buy: the one for ``service``, or without one the fastest (then cheapest) on offer.

    Raises:
        CourierRejected: nothing is on offer, or not ``service``.
    """
    offered = [rate for rate in rates if rate.service is not None]
    candidates = [rate for rate in offered if rate.service == service] if service is not None else offered
    if not candidates:
        names = sorted({rate.service for rate in offered if rate.service is not None})
        wanted = f"service {service!r}" if service is not None else "a service"
        raise CourierRejected(
            f"Karrio offers no rate for {wanted} on this route (offered: {names or 'nothing'})",
            code="courier_service_not_offered",
        )
    # A rate without transit days promises nothing: it goes last.
    return min(
        candidates,
        key=lambda rate: (rate.transit_days if rate.transit_days is not None else 10**6, rate.total_charge),
    )


def _utc(moment: datetime) -> datetime:
    # Karrio's carriers give local times without a zone, and Karrio passes them on as they are; we read a
    # naive time as UTC, which is what Karrio itself writes (its label-created event) and what we inject.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return to_utc(moment)
    except ValueError as exc:
        # Within a day of year 1 or 9999 in another zone: no datetime holds that instant in UTC.
        raise Malformed(f"{moment.isoformat()} lies outside the years 1 to 9999 in UTC") from exc


def _parse(text: str, formats: Sequence[str]) -> datetime | None:
    for form in formats:
        try:
            return datetime.strptime(text, form)  # naive: _utc makes it aware
        except ValueError:
            continue
    return None


def event_time(event: KarrioTrackingEvent) -> datetime:
    """When an event happened, aware UTC: its ``timestamp`` if any, else its ``date`` and ``time``.

    An event with a date but no time happened at the start of that day.
    """
    if event.timestamp:
        try:
            return _utc(datetime.fromisoformat(event.timestamp))
        except ValueError as exc:
            raise Malformed(f"unreadable event timestamp {event.timestamp!r}") from exc
    day = _parse(event.date or "", _DATE_FORMATS)
    if day is None:
        raise Malformed(f"unreadable event date {event.date!r}")
    if not event.time:
        return _utc(day)
    clock = _parse(event.time, _TIME_FORMATS)
    if clock is None:
        raise Malformed(f"unreadable event time {event.time!r}")
    return _utc(datetime.combine(day.date(), clock.time()))


def estimated_delivery(text: str | None) -> datetime | None:
    """Karrio's ``estimated_delivery`` (a date, sometimes a date and time); a date is the start of that day.

    Only an estimate: one we cannot read is left out rather than failing the tracking that carries it.
    """
    if not text:
        return None
    try:
        return _utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def tracking_from_tracker(tracker: KarrioTracker) -> Tracking:
    # Karrio keeps events newest first; a stable sort on the reversed list keeps its order for equal times.
    events = sorted(
        (
            TrackingEvent(
                status=tracking_status(event.status),
                occurred_at=event_time(event),
                description=event.description or "",
                location=event.location or "",
                courier_code=event.code or "",
            )
            for event in reversed(tracker.events or [])
        ),
        key=lambda event: event.occurred_at,
    )
    return Tracking(
        tracking_number=tracker.tracking_number,
        status=tracking_status(tracker.status),
        events=tuple(events),
        estimated_delivery_at=estimated_delivery(tracker.estimated_delivery),
    )


def tracking_from_shipment(
    shipment: KarrioShipment, tracker: KarrioTracker | None, tracking_number: str
) -> Tracking:
    """Where the parcel of ``shipment`` is: its tracker's view, or without a tracker (Karrio makes none for
    carriers without a tracking API until one is made) its shipment status, PENDING when just bought."""
    if tracker is None:
        status = SHIPMENT_STATUSES.get(shipment.status, TrackingStatus.UNKNOWN)
        return Tracking(tracking_number=tracking_number, status=status)
    tracking = tracking_from_tracker(tracker)
    if shipment.status == "cancelled":
        # A tracker made before the cancel keeps saying pending: the shipment knows better.
        return replace(tracking, status=TrackingStatus.CANCELLED)
    return tracking


def decode_label(encoded: str) -> bytes:
    try:
        pdf = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Malformed("the label is not base64") from exc
    if not pdf.startswith(_PDF_MAGIC):
        raise Malformed(f"the label is not a PDF (starts {pdf[:8]!r})")
    return pdf


def purchased_label(shipment: KarrioShipment) -> bytes | None:
    """The label a purchase answer carries; None for shipments as lists show them (no ``base64``)."""
    for document in shipment.shipping_documents:
        if document.category == "label" and document.base64:
            return decode_label(document.base64)
    return None


def booking_from_shipment(shipment: KarrioShipment, label: bytes, request: BookingRequest) -> Booking:
    """The booking a purchased shipment stands for. Karrio's generic carrier gives no pickup window, so the
    parcel is collected from ``request.ready_at`` on."""
    rate = shipment.selected_rate
    service = shipment.service or (rate.service if rate is not None else None)
    if not shipment.tracking_number or service is None:
        raise Malformed(f"shipment {shipment.id} ({shipment.status}) has no tracking number or service")
    return Booking(
        courier_shipment_id=shipment.id,
        tracking_number=shipment.tracking_number,
        service=service,
        label_pdf=label,
        pickup_from=request.ready_at,
        pickup_until=None,
        estimated_delivery_at=estimated_delivery(rate.estimated_delivery if rate is not None else None),
    )


def elect(shipments: Sequence[KarrioShipment]) -> KarrioShipment | None:
    """The one shipment that stands for a booking among those carrying its key: a bought one if any, else
    the oldest draft (every concurrent attempt elects the same one), else a cancelled one."""

    def rank(shipment: KarrioShipment) -> tuple[int, str, str]:
        order = {"draft": 1, "cancelled": 2}.get(shipment.status, 0)
        # Karrio writes every created_at alike ("2026-11-21 17:30:49.492792+00:00"): text order is time order.
        return order, shipment.created_at, shipment.id

    return min(shipments, key=rank, default=None)


def with_key(shipments: Sequence[KarrioShipment], idempotency_key: str) -> list[KarrioShipment]:
    """The shipments that carry exactly ``idempotency_key``: Karrio's filters are looser than equality (a
    substring of the reference; any metadata value)."""
    return [s for s in shipments if s.metadata.get(IDEMPOTENCY_KEY_FIELD) == idempotency_key]


def with_tracking_number(shipments: Sequence[KarrioShipment], tracking_number: str) -> KarrioShipment | None:
    """The shipment with exactly ``tracking_number``: Karrio's filter is a substring match."""
    return next((s for s in shipments if s.tracking_number == tracking_number), None)


# --- Errors -------------------------------------------------------------------------------------------------


def rejection_code(status: int, karrio_codes: Sequence[str]) -> str:
    """Our code for a 4xx answer (other than 429) with Karrio's error codes."""
    if status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
        return "courier_unauthorized"
    if status == HTTPStatus.NOT_FOUND:
        # Outside lookups of a shipment: "No active carrier connection found", "Unknown carrier".
        return "courier_not_configured"
    if status == HTTPStatus.CONFLICT:
        return "courier_conflict"  # Karrio's state_error: bought already, under way already...
    if status == HTTPStatus.FAILED_DEPENDENCY:
        return "courier_carrier_error"  # the carrier behind Karrio said no
    if "service_unavailable" in karrio_codes:
        return "courier_service_not_offered"
    if status == HTTPStatus.BAD_REQUEST:
        return "courier_invalid_request"
    return "courier_rejected"


def failure(
    status: int, content: bytes, text: str, *, where: str, missing: type[CourierError] | None
) -> CourierError:
    """The error for an answer that is not a success: ``content`` its body, ``text`` the same decoded,
    ``where`` the request and status for the message, ``missing`` what a 404 means (else a rejection)."""
    try:
        body = KarrioErrorBody.model_validate_json(content)
    except ValidationError:
        body = KarrioErrorBody(detail=text[:300] or None)
    messages = [*body.errors, *body.messages]
    details = [f"{m.code}: {m.message}" if m.code else m.message or "" for m in messages]
    said = "; ".join(filter(None, [*details, body.detail]))
    message = f"{where}: {said}" if said else where
    if status == HTTPStatus.TOO_MANY_REQUESTS or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return CourierUnavailable(message)
    if status == HTTPStatus.NOT_FOUND and missing is not None:
        return missing(message)
    return CourierRejected(message, code=rejection_code(status, [m.code for m in messages if m.code]))


# --- Webhooks -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KarrioWebhookEvent:
    """One webhook delivery from Karrio, in our words.

    ``event_id`` is derived (Karrio sends none): ``karrio:`` and the SHA-256 of the body's canonical JSON.
    Karrio never re-sends, so two deliveries with the same body are the same news twice (a tracker's body
    carries all its events, so any new event changes it) and may be dropped as duplicates.
    """

    event_id: str
    event_type: str  # Karrio's name, e.g. "tracker_updated", "shipment_cancelled"
    tracking_number: str | None
    tracking: Tracking | None  # tracker_*: status and events; shipment_*: the status alone, when it has one
    courier_shipment_id: str | None = None  # shipment_* events only: trackers do not name their shipment


def parse_webhook(payload: Mapping[str, Any]) -> KarrioWebhookEvent:
    """Read the JSON body of a Karrio webhook delivery.

    The caller checks the ``X-Event-Id`` header (the subscription's secret) before trusting the body.

    Raises:
        ValueError: the body is not a Karrio event, or a tracker or shipment event we cannot read.
    """
    try:
        body = _Event.model_validate(payload)
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (ValidationError, TypeError, ValueError) as exc:
        raise ValueError(f'not a Karrio webhook body ({{"event": ..., "data": {{...}}}}): {exc}') from exc
    event_id = "karrio:" + hashlib.sha256(canonical.encode()).hexdigest()
    try:
        if body.event.startswith("tracker_"):
            tracker = KarrioTracker.model_validate(body.data)
            tracking = tracking_from_tracker(tracker)
            return KarrioWebhookEvent(event_id, body.event, tracker.tracking_number, tracking)
        if body.event.startswith("shipment_"):
            shipment = KarrioShipment.model_validate(body.data)
            status = SHIPMENT_STATUSES.get(shipment.status)
            number = shipment.tracking_number
            derived = Tracking(number, status) if number and status is not None else None
            return KarrioWebhookEvent(event_id, body.event, number, derived, courier_shipment_id=shipment.id)
    except (ValidationError, Malformed) as exc:
        raise ValueError(f"unreadable Karrio {body.event} event: {exc}") from exc
    number = body.data.get("tracking_number")
    return KarrioWebhookEvent(event_id, body.event, number if isinstance(number, str) else None, None)
