"""The built-in courier's rules, pure: no database and no HTTP here (``gateway`` does both).

Its services and their reach, the tracking number a key stands for, the day a booking plans for its parcel
(pickup, transit at road speed, out for delivery, delivered), what a stored parcel means in our words (its
booking with a label, its tracking so far), and the webhook each planned event is reported with, with what
an answer to that webhook means (acknowledged, to be resent, refused for good) and when to resend.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from services.couriers.labels import label_pdf
from services.couriers.ports import (
    Booking,
    BookingRequest,
    Capabilities,
    CourierRejected,
    Place,
    ServiceOption,
    Tracking,
    TrackingEvent,
    TrackingStatus,
)
from services.couriers.providers.local.table import LocalParcel
from services.routing.geo import GeoPoint, haversine_km
from services.routing.transit import TransitRule

NAME = "local"
T = TrackingStatus

# A road courier: same day within a few hundred km, or a next-day parcel network (the service levels of a
# site's default transit model, with a reach).
_SERVICES: tuple[TransitRule, ...] = (
    TransitRule("express", fixed_hours=1.0, speed_kmh=70.0, max_km=600.0, fixed_cost=25.0, cost_per_km=1.2),
    TransitRule(
        "standard", fixed_hours=18.0, speed_kmh=60.0, max_km=5000.0, fixed_cost=9.0, cost_per_km=0.05
    ),
)
_PICKUP_WINDOW = timedelta(hours=2)
_PICKUP_DELAY = timedelta(minutes=30)
# The wait after each failed send: soon after the first (a timeout on a busy API usually passes within
# seconds: a one-minute wait there outlasted the chaos tests' settling time), then long enough for our API
# to come back from a restart or a deploy before ``max_attempts`` parks the parcel. Real time, whatever
# ``time_scale``: it is our API that is away, not the parcel that travels.
_RESEND_AFTER = (timedelta(seconds=5), timedelta(minutes=1), timedelta(minutes=4), timedelta(minutes=16))
# Answers that may change when the same event is sent again (a timeout, a conflict, a rate limit); every
# other 4xx is a refusal of the event itself.
_RETRYABLE_4XX = frozenset({408, 409, 429})


@dataclass(frozen=True, slots=True)
class Refusal:
    """An event our receiver did not acknowledge; ``final`` when sending it again cannot change that."""

    error: str
    final: bool


def tracking_number_for(idempotency_key: str) -> str:
    """Derived from the key, so a booking retried after a crash finds the first one by its primary key."""
    return "SFL" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:12].upper()


def capabilities() -> Capabilities:
    return Capabilities(
        name=NAME,
        services=tuple(rule.level for rule in _SERVICES),
        labels=True,
        tracking_webhooks=True,
        cancel_after_pickup=False,
    )


def service_options(origin: Place, destination: Place) -> list[ServiceOption]:
    """The services that reach ``destination`` from ``origin``, how long they take and what they cost.

    Raises:
        CourierRejected: an incomplete address, or farther than every service (``_check_route``).
    """
    km = _km(origin, destination)
    _check_route(destination, km)
    return [
        ServiceOption(
            service=rule.level,
            transit_hours=round(rule.duration(km).total_seconds() / 3600, 2),
            cost=round(rule.cost(km), 2),
            currency="EUR",
        )
        for rule in _offered(km)
    ]


def plan(number: str, request: BookingRequest, *, now: datetime, time_scale: float) -> LocalParcel:
    """The parcel a booking made at ``now`` creates, its events planned; ``time_scale`` compresses the plan.

    Raises:
        CourierRejected: the route is not served (``_check_route``), or not by ``request.service``.
    """
    km = _km(request.origin, request.destination)
    _check_route(request.destination, km)
    offered = {rule.level: rule for rule in _offered(km)}
    service = request.service or next(iter(offered))
    rule = offered.get(service)
    if rule is None:
        raise CourierRejected(f"service {service!r} does not serve this route", code="service_unavailable")
    scale = time_scale
    ready = max(now, request.ready_at or now)
    pickup = ready + _PICKUP_DELAY / scale
    transit = rule.duration(km) / scale
    delivered = pickup + transit
    origin, destination = request.origin.city, request.destination.city
    events = [
        _event(T.PICKED_UP, pickup, "Picked up from the microfactory", origin),
        _event(T.IN_TRANSIT, pickup + min(transit / 4, timedelta(minutes=10) / scale), "On the way", origin),
        _event(T.OUT_FOR_DELIVERY, delivered - transit / 4, "Out for delivery", destination),
        _event(T.DELIVERED, delivered, f"Delivered to {request.destination.name}", destination),
    ]
    return LocalParcel(
        tracking_number=number,
        idempotency_key=request.idempotency_key,
        reference=request.reference,
        service=service,
        origin=asdict(request.origin),
        destination=asdict(request.destination),
        parcel=asdict(request.parcel),
        booked_at=now,
        pickup_from=ready,
        pickup_until=ready + _PICKUP_WINDOW / scale,
        estimated_delivery_at=delivered,
        plan=events,
        next_due_at=pickup,
    )


def booking(parcel: LocalParcel) -> Booking:
    """The booking a parcel stands for, with its label."""
    destination = parcel.destination
    label = label_pdf(
        [
            f"Service: {parcel.service}   Ref: {parcel.reference}",
            f"From: {parcel.origin['name']}, {parcel.origin['city']}",
            f"To: {destination['name']}",
            *destination["lines"],
            f"{destination['postal_code']} {destination['city']} {destination['country']}",
            f"Weight: {parcel.parcel['weight_g']:.0f} g",
        ],
        title=parcel.tracking_number,
    )
    return Booking(
        courier_shipment_id=parcel.tracking_number,
        tracking_number=parcel.tracking_number,
        service=parcel.service,
        label_pdf=label,
        pickup_from=parcel.pickup_from,
        pickup_until=parcel.pickup_until,
        estimated_delivery_at=parcel.estimated_delivery_at,
    )


def tracking(parcel: LocalParcel, tracking_number: str, *, now: datetime) -> Tracking:
    """Where the parcel is at ``now``: the events of its plan that have happened by then."""
    events = tuple(_tracking_event(e) for e in parcel.plan if datetime.fromisoformat(e["at"]) <= now)
    return Tracking(
        tracking_number=tracking_number,
        status=events[-1].status if events else T.PENDING,
        events=events,
        estimated_delivery_at=None if parcel.cancelled_at else parcel.estimated_delivery_at,
    )


def cancelled_plan(parcel: LocalParcel, *, now: datetime) -> list[dict[str, Any]]:
    """The plan of a parcel cancelled at ``now``: the cancellation, its one event.

    Raises:
        CourierRejected: an event of its plan has happened (``already_picked_up``).
    """
    happened = [e for e in parcel.plan if datetime.fromisoformat(e["at"]) <= now]
    if happened:
        raise CourierRejected("the parcel has been picked up already", code="already_picked_up")
    return [_event(T.CANCELLED, now, "Booking cancelled by the sender", parcel.origin["city"])]


def webhook(parcel: LocalParcel, index: int, entry: dict[str, Any]) -> tuple[str, bytes]:
    """The message id and JSON body that report event ``index`` (``entry``) of the parcel's plan."""
    body = json.dumps(
        {
            "type": "tracking.updated",
            "data": {
                "tracking_number": parcel.tracking_number,
                "status": entry["status"],
                "occurred_at": entry["at"],
                "description": entry["description"],
                "location": entry["location"],
            },
        },
        separators=(",", ":"),
    ).encode()
    # Stable per event: a resend after a lost acknowledgement is recognised as the same event.
    msg_id = f"{parcel.tracking_number}-{index}-{entry['status']}"
    return msg_id, body


def refusal(status: int, text: str) -> Refusal:
    """What our receiver's answer to a webhook means when it is not a 2xx (HTTP ``status``, body ``text``)."""
    final = 400 <= status < 500 and status not in _RETRYABLE_4XX
    return Refusal(f"{status} {text[:200]}", final=final)


def resend_at(due: datetime, *, now: datetime, attempts: int) -> datetime:
    """When to send an event due at ``due`` again after ``attempts`` unacknowledged sends (the last at
    ``now``)."""
    return max(due, now + _RESEND_AFTER[min(attempts, len(_RESEND_AFTER)) - 1])


def _km(origin: Place, destination: Place) -> float:
    return haversine_km(
        GeoPoint(origin.latitude, origin.longitude), GeoPoint(destination.latitude, destination.longitude)
    )


def _check_route(destination: Place, km: float) -> None:
    """Refuse what no driver could deliver: no street, city or country, or farther than any service."""
    country = destination.country
    # ISO 3166-1 keeps AA, QM-QZ, XA-XZ and ZZ for private use: no such country exists.
    private = country in {"AA", "ZZ"} or country[:1] == "X" or "QM" <= country <= "QZ"
    if not destination.lines or not destination.city or len(country) != 2 or not country.isupper() or private:
        raise CourierRejected(
            f"cannot deliver to {destination.city or '?'} ({country or 'no country'}): incomplete address",
            code="invalid_address",
        )
    if not _offered(km):
        raise CourierRejected(f"{km:.0f} km is beyond every service", code="destination_out_of_range")


def _offered(km: float) -> list[TransitRule]:
    return [rule for rule in _SERVICES if rule.offers(km)]


def _event(status: TrackingStatus, at: datetime, description: str, location: str) -> dict[str, Any]:
    return {"status": status.value, "at": at.isoformat(), "description": description, "location": location}


def _tracking_event(entry: dict[str, Any]) -> TrackingEvent:
    return TrackingEvent(
        status=TrackingStatus(entry["status"]),
        occurred_at=datetime.fromisoformat(entry["at"]),
        description=entry["description"],
        location=entry["location"],
        courier_code=entry["status"],
    )
