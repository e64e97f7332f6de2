"""The courier port over a Karrio server's REST API (checked against karrio-server 2026.1, generic carrier).

Karrio is an open-source shipping gateway in front of many carriers. A ``KarrioCourier`` books through the
active connections of one carrier name (``generic`` by default: Karrio's offline custom carrier, which rates,
buys and prints a real PDF label, but has no tracking API of its own).

What Karrio offers, and how each operation uses it:

- quote: ``POST /v1/proxy/rates`` with ``carrier_ids`` = the ids of the carrier's active connections
  (``GET /v1/connections?carrier_name=...&active=true``), so another carrier on the same Karrio never answers.
- book: Karrio has no idempotency header, so the key rides in the shipment's ``metadata``
  (``IDEMPOTENCY_KEY_FIELD``) and our reference in ``reference``. Shipments of an attempt are found with
  ``GET /v1/shipments?reference=R&metadata_key=K&metadata_value=V``: ``reference`` narrows in the database
  first (a substring match), ``metadata_value`` is then matched by Karrio in Python over what is left, and we
  re-check the key exactly (it alone names the booking). Only when there are none is a draft created
  (``POST /v1/shipments`` with ``draft_body``: no ``service``, so rated, not bought) and the lookup repeated.
  One shipment is then elected among those with the key (``_elect``) and, if a draft, bought with
  ``POST /v1/shipments/{id}/purchase`` at the rate of ``request.service``, else the fastest (then cheapest)
  rate; Karrio refuses a second purchase with 409 ("cannot be purchased again"). A retry after a lost answer
  or a killed worker finds the purchased shipment and returns it; a draft left by a worker killed before the
  purchase is bought; two concurrent attempts elect the same oldest draft, so at most one purchase reaches
  the carrier unless both pass Karrio's state check in the same instant (Karrio does not lock the row).
  Losing drafts stay behind, unbought. A key whose shipment was cancelled is refused (``booking_cancelled``):
  a new booking needs a new key. The generic carrier gives no pickup window: Karrio is told
  ``shipping_date`` = ``ready_at``, and the booking is collectable from then on, without an end.
- label: the purchase answer carries it (``shipping_documents[].base64``); a shipment found later does not
  (lists leave ``base64`` empty), so it is fetched with ``POST /v1/shipments/{id}/documents/label``.
  ``GET /v1/shipments/{id}/label.pdf`` serves the same bytes but is left out of Karrio's API schema.
- track: the shipment by ``GET /v1/shipments?tracking_number=`` (a substring filter: we match exactly),
  then its tracker ``GET /v1/trackers/{tracker_id}``. ``GET /v1/trackers/{tracking_number}`` also works but
  is not scoped to the caller's account. Karrio keeps events newest first and rewrites the first
  ``in_transit`` event of a tracker to ``picked_up`` when there is none; its own "label created" event has the
  status ``created``. A shipment without a tracker (Karrio creates none for carriers without a tracking API
  until one is made) reports its shipment status (``SHIPMENT_STATUSES``): PENDING when just bought.
- cancel: ``POST /v1/shipments/{id}/cancel``: 200 the first time, 202 when already cancelled, 409 once the
  parcel is under way (shipment status shipped, in_transit, delivered...).
- webhooks: ``POST /v1/webhooks`` answers with a ``secret``. Karrio does not sign: it sends that secret as
  is in the ``X-Event-Id`` header of every delivery, body ``{"event": ..., "data": <tracker or shipment>}``
  and nothing else (no event id, no timestamp), one POST without retry. See ``parse_webhook``.

Errors (everything leaves as a ``CourierError``):

    CourierError
    ├── CourierUnavailable (retryable)  timeout, refused or broken connection, 5xx, 429, an unreadable answer
    ├── CourierRejected                 any other 4xx; ``code`` says which (``_rejection_code``)
    └── ShipmentNotFound                no shipment with that tracking number (track, cancel)

Karrio answers 424 when the carrier behind it refused or failed; that is CourierRejected
(``courier_carrier_error``) since Karrio does not tell a carrier's outage from its refusal.
An unreadable 2xx answer is CourierUnavailable rather than CourierRejected: it says nothing about our
request (a proxy's error page, a cut-off body, a Karrio upgrade that an operator must look at), and after a
purchase it may hide a shipment that was bought. Retrying is safe because booking is idempotent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final, Generic, TypeVar

import httpx
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
    ShipmentNotFound,
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
_PAGE_SIZE: Final = 100
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
R = TypeVar("R")


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


class _Document(BaseModel):
    base64: str


class _Message(BaseModel):
    code: str | None = None
    message: str | None = None


class _Rates(BaseModel):
    rates: list[KarrioRate] = []
    messages: list[_Message] = []  # what the carrier said when it gave no rate


class _ErrorBody(BaseModel):
    errors: list[_Message] = []
    messages: list[_Message] = []  # 424: what the carrier said
    detail: str | None = None


class _Malformed(ValueError):
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


# --- Pure mapping: Karrio -> ours -------------------------------------------------------------------------


def service_option(rate: KarrioRate) -> ServiceOption:
    if rate.service is None:
        raise _Malformed(f"rate {rate.id} names no service")
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
        raise _Malformed(f"{moment.isoformat()} lies outside the years 1 to 9999 in UTC") from exc


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
            raise _Malformed(f"unreadable event timestamp {event.timestamp!r}") from exc
    day = _parse(event.date or "", _DATE_FORMATS)
    if day is None:
        raise _Malformed(f"unreadable event date {event.date!r}")
    if not event.time:
        return _utc(day)
    clock = _parse(event.time, _TIME_FORMATS)
    if clock is None:
        raise _Malformed(f"unreadable event time {event.time!r}")
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


def decode_label(encoded: str) -> bytes:
    try:
        pdf = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Malformed("the label is not base64") from exc
    if not pdf.startswith(_PDF_MAGIC):
        raise _Malformed(f"the label is not a PDF (starts {pdf[:8]!r})")
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
        raise _Malformed(f"shipment {shipment.id} ({shipment.status}) has no tracking number or service")
    return Booking(
        courier_shipment_id=shipment.id,
        tracking_number=shipment.tracking_number,
        service=service,
        label_pdf=label,
        pickup_from=request.ready_at,
        pickup_until=None,
        estimated_delivery_at=estimated_delivery(rate.estimated_delivery if rate is not None else None),
    )


def _elect(shipments: Sequence[KarrioShipment]) -> KarrioShipment | None:
    """The one shipment that stands for a booking among those carrying its key: a bought one if any, else
    the oldest draft (every concurrent attempt elects the same one), else a cancelled one."""

    def rank(shipment: KarrioShipment) -> tuple[int, str, str]:
        order = {"draft": 1, "cancelled": 2}.get(shipment.status, 0)
        # Karrio writes every created_at alike ("2026-11-21 17:30:49.492792+00:00"): text order is time order.
        return order, shipment.created_at, shipment.id

    return min(shipments, key=rank, default=None)


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
    except (ValidationError, _Malformed) as exc:
        raise ValueError(f"unreadable Karrio {body.event} event: {exc}") from exc
    number = body.data.get("tracking_number")
    return KarrioWebhookEvent(event_id, body.event, number if isinstance(number, str) else None, None)


# --- I/O ----------------------------------------------------------------------------------------------------


def _rejection_code(status: int, karrio_codes: Sequence[str]) -> str:
    if status in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
        return "courier_unauthorized"
    if status == httpx.codes.NOT_FOUND:
        # Outside lookups of a shipment: "No active carrier connection found", "Unknown carrier".
        return "courier_not_configured"
    if status == httpx.codes.CONFLICT:
        return "courier_conflict"  # Karrio's state_error: bought already, under way already...
    if status == httpx.codes.FAILED_DEPENDENCY:
        return "courier_carrier_error"  # the carrier behind Karrio said no
    if "service_unavailable" in karrio_codes:
        return "courier_service_not_offered"
    if status == httpx.codes.BAD_REQUEST:
        return "courier_invalid_request"
    return "courier_rejected"


def _failure(response: httpx.Response, missing: type[CourierError] | None) -> CourierError:
    where = f"Karrio {response.request.method} {response.request.url.path}: HTTP {response.status_code}"
    try:
        body = _ErrorBody.model_validate_json(response.content)
    except ValidationError:
        body = _ErrorBody(detail=response.text[:300] or None)
    messages = [*body.errors, *body.messages]
    details = [f"{m.code}: {m.message}" if m.code else m.message or "" for m in messages]
    text = "; ".join(filter(None, [*details, body.detail]))
    message = f"{where}: {text}" if text else where
    status = response.status_code
    if status == httpx.codes.TOO_MANY_REQUESTS or status >= httpx.codes.INTERNAL_SERVER_ERROR:
        return CourierUnavailable(message)
    if status == httpx.codes.NOT_FOUND and missing is not None:
        return missing(message)
    return CourierRejected(message, code=_rejection_code(status, [m.code for m in messages if m.code]))


class KarrioCourier:
    """A courier behind a Karrio server at ``base_url``, through its connections of ``carrier_name``.

    Args:
        base_url: the Karrio API's root, e.g. ``http://127.0.0.1:5002``.
        token: a Karrio API token (header ``Authorization: Token <token>``).
        carrier_name: Karrio's carrier slug whose connections rate and ship.
        timeout_s: per request; a purchase answer carries the label (about 230 kB for the generic carrier).
        transport: for tests.
    """

    name: str = "karrio"

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        carrier_name: str = GENERIC_CARRIER,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.carrier_name = carrier_name
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Token {token}"},
            timeout=timeout_s,
            transport=transport,
        )

    async def capabilities(self) -> Capabilities:
        services = await self._call("GET", f"/v1/carriers/{self.carrier_name}/services")
        if not isinstance(services, dict) or not all(isinstance(name, str) for name in services):
            raise CourierUnavailable(
                f"Karrio listed {self.carrier_name} services unreadably: {services!r:.200}"
            )
        return Capabilities(
            name=self.name,
            services=tuple(services),
            labels=True,
            tracking_webhooks=True,
            # Karrio refuses to cancel a shipment once its tracker says it moved (409).
            cancel_after_pickup=False,
        )

    async def quote(self, origin: Place, destination: Place, parcel: Parcel) -> list[ServiceOption]:
        body = {
            "shipper": address(origin),
            "recipient": address(destination),
            "parcels": [parcel_data(parcel)],
            "carrier_ids": await self._carrier_ids(),
        }
        answer = await self._call("POST", "/v1/proxy/rates", json=body)
        rates = self._read(_Rates, answer)
        if not rates.rates and rates.messages:
            said = "; ".join(f"{m.code}: {m.message}" for m in rates.messages)
            raise CourierRejected(f"Karrio found no rate: {said}", code="courier_carrier_error")
        return self._mapped(
            lambda: [service_option(rate) for rate in rates.rates if rate.service is not None]
        )

    async def book(self, request: BookingRequest) -> Booking:
        shipment = _elect(await self._attempts(request))
        if shipment is None:
            await self._create_draft(request)
            shipment = _elect(await self._attempts(request))
            if shipment is None:
                raise CourierUnavailable(
                    f"Karrio does not list the shipment it created for {request.reference}"
                )
        if shipment.status == "cancelled":
            raise CourierRejected(
                f"the booking with key {request.idempotency_key} was cancelled ({shipment.id}); "
                "book again with a new key",
                code="booking_cancelled",
            )
        if shipment.status == "draft":
            shipment = await self._purchase(shipment, request.service)
        label = self._mapped(lambda: purchased_label(shipment)) or await self._label(shipment.id)
        return self._mapped(lambda: booking_from_shipment(shipment, label, request))

    async def track(self, tracking_number: str) -> Tracking:
        shipment = await self._shipment(tracking_number)
        if shipment.tracker_id is None:
            status = SHIPMENT_STATUSES.get(shipment.status, TrackingStatus.UNKNOWN)
            return Tracking(tracking_number=tracking_number, status=status)
        answer = await self._call("GET", f"/v1/trackers/{shipment.tracker_id}", missing=ShipmentNotFound)
        tracker = self._read(KarrioTracker, answer)
        tracking = self._mapped(lambda: tracking_from_tracker(tracker))
        if shipment.status == "cancelled":
            # A tracker made before the cancel keeps saying pending: the shipment knows better.
            return replace(tracking, status=TrackingStatus.CANCELLED)
        return tracking

    async def cancel(self, tracking_number: str) -> None:
        shipment = await self._shipment(tracking_number)
        if shipment.status != "cancelled":
            await self._call("POST", f"/v1/shipments/{shipment.id}/cancel", missing=ShipmentNotFound)

    async def subscribe_webhook(
        self, url: str, *, events: Sequence[str] | None = None, description: str = "spareflow"
    ) -> tuple[str, str]:
        """Have Karrio POST ``events`` (default ``WEBHOOK_EVENTS``) to ``url``; returns (webhook id, secret).

        Subscribing a URL again reuses its subscription (enabled again, with these events): two would
        deliver everything twice. Karrio disables a subscription after more than 5 failed deliveries in a row.
        """
        wanted = list(events) if events is not None else list(WEBHOOK_EVENTS)
        hooks = await self._all(KarrioPage[KarrioWebhook], "/v1/webhooks")
        hook = next((hook for hook in hooks if hook.url == url), None)
        if hook is None:
            body: dict[str, object] = {"url": url, "enabled_events": wanted, "description": description}
            hook = self._read(KarrioWebhook, await self._call("POST", "/v1/webhooks", json=body))
        elif hook.disabled or sorted(hook.enabled_events) != sorted(wanted):
            body = {"enabled_events": wanted, "disabled": False, "description": description}
            hook = self._read(KarrioWebhook, await self._call("PATCH", f"/v1/webhooks/{hook.id}", json=body))
        return hook.id, hook.secret

    async def ensure_generic_connection(self) -> str:
        """The id of an active ``generic`` connection, created when there is none.

        Karrio lets several connections share a ``carrier_id``, so this looks before it creates. The generic
        carrier needs no secret; Karrio requires ``display_name`` and ``custom_carrier_name`` (which its
        rates then show as their ``carrier_name``).
        """
        active = await self._active_connections(GENERIC_CARRIER)
        if active:
            return active[0].id
        body = {
            "carrier_name": GENERIC_CARRIER,
            "carrier_id": "spareflow-generic",
            "credentials": {"display_name": "Spareflow courier", "custom_carrier_name": "spareflow_generic"},
        }
        created = await self._call("POST", "/v1/connections", json=body)
        return self._read(KarrioConnection, created).id

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- booking steps ---

    async def _attempts(self, request: BookingRequest) -> list[KarrioShipment]:
        query = {
            "reference": request.reference,
            "metadata_key": IDEMPOTENCY_KEY_FIELD,
            "metadata_value": request.idempotency_key,
        }
        found = await self._all(KarrioPage[KarrioShipment], "/v1/shipments", query)
        # Both filters are looser than equality (a substring; any metadata value).
        return [s for s in found if s.metadata.get(IDEMPOTENCY_KEY_FIELD) == request.idempotency_key]

    async def _create_draft(self, request: BookingRequest) -> None:
        body = {**draft_body(request), "carrier_ids": await self._carrier_ids()}
        await self._call("POST", "/v1/shipments", json=body)

    async def _purchase(self, draft: KarrioShipment, service: str | None) -> KarrioShipment:
        rate = choose_rate(draft.rates, service)
        path = f"/v1/shipments/{draft.id}/purchase"
        try:
            answer = await self._call("POST", path, json={"selected_rate_id": rate.id})
        except CourierRejected as exc:
            if exc.code != "courier_conflict":
                raise
            # Another attempt bought this draft first (Karrio: "cannot be purchased again"): that is ours.
            current = self._read(KarrioShipment, await self._call("GET", f"/v1/shipments/{draft.id}"))
            if current.status in ("draft", "cancelled"):
                raise
            return current
        return self._read(KarrioShipment, answer)

    async def _label(self, shipment_id: str) -> bytes:
        # A bought shipment always has its label: a 404 here is Karrio's trouble, not our request's.
        path = f"/v1/shipments/{shipment_id}/documents/label"
        document = self._read(_Document, await self._call("POST", path, missing=CourierUnavailable))
        return self._mapped(lambda: decode_label(document.base64))

    # --- lookups ---

    async def _carrier_ids(self) -> list[str]:
        ids = sorted({c.carrier_id for c in await self._active_connections(self.carrier_name)})
        if not ids:
            raise CourierRejected(
                f"Karrio has no active connection for carrier {self.carrier_name!r}",
                code="courier_not_configured",
            )
        return ids

    async def _active_connections(self, carrier_name: str) -> list[KarrioConnection]:
        query = {"carrier_name": carrier_name, "active": "true"}
        connections = await self._all(KarrioPage[KarrioConnection], "/v1/connections", query)
        return [c for c in connections if c.active]

    async def _shipment(self, tracking_number: str) -> KarrioShipment:
        if not tracking_number.strip():
            # Karrio's filter is a substring match: an empty number would match every shipment.
            raise ShipmentNotFound("an empty tracking number")
        query = {"tracking_number": tracking_number}
        for shipment in await self._all(KarrioPage[KarrioShipment], "/v1/shipments", query):
            if shipment.tracking_number == tracking_number:
                return shipment
        raise ShipmentNotFound(f"Karrio has no shipment with tracking number {tracking_number!r}")

    async def _all(
        self, page_model: type[KarrioPage[T]], path: str, query: Mapping[str, str] | None = None
    ) -> list[T]:
        found: list[T] = []
        offset = 0
        while True:
            params = {**(query or {}), "limit": str(_PAGE_SIZE), "offset": str(offset)}
            page = self._read(page_model, await self._call("GET", path, params=params))
            found.extend(page.results)
            if page.next is None or not page.results:
                return found
            offset += len(page.results)

    # --- the wire ---

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, str] | None = None,
        missing: type[CourierError] | None = None,
    ) -> object:
        """Karrio's JSON answer to one request. ``missing``: what a 404 means here (else a rejection)."""
        try:
            response = await self._http.request(method, path, json=json, params=params)
        except httpx.TimeoutException as exc:
            raise CourierUnavailable(f"Karrio {method} {path}: no answer in time ({exc!r})") from exc
        except httpx.HTTPError as exc:
            raise CourierUnavailable(f"Karrio {method} {path}: {exc!r}") from exc
        if not response.is_success:
            raise _failure(response, missing)
        try:
            answer: object = response.json()
        except ValueError as exc:
            raise CourierUnavailable(f"Karrio {method} {path}: not JSON: {response.text[:200]!r}") from exc
        return answer

    @staticmethod
    def _read(model: type[T], answer: object) -> T:
        try:
            return model.model_validate(answer)
        except ValidationError as exc:
            raise CourierUnavailable(f"unexpected answer from Karrio: {exc}") from exc

    @staticmethod
    def _mapped(mapping: Callable[[], R]) -> R:
        try:
            return mapping()
        except _Malformed as exc:
            raise CourierUnavailable(f"unexpected answer from Karrio: {exc}") from exc
