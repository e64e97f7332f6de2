"""The courier port, in our words: quote, book, track and cancel a parcel from a microfactory to a customer.

Every adapter (``providers.karrio``: a Karrio shipping gateway and, through it, its carriers;
``providers.local``: the built-in simulated courier) maps its party's vocabulary into these types in its
pure ``mapping`` module, so shipping code never sees a carrier's own status names or error shapes.
``tests/contract/test_couriers.py`` holds every adapter to one contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class TrackingStatus(StrEnum):
    """Where a parcel is, in one vocabulary for every courier."""

    PENDING = "pending"  # booked; not yet in the courier's hands
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    DELIVERY_FAILED = "delivery_failed"
    ON_HOLD = "on_hold"
    RETURN_TO_SENDER = "return_to_sender"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Place:
    """One end of a shipment: a street address and, for couriers that price by distance, coordinates."""

    name: str
    lines: tuple[str, ...]
    city: str
    postal_code: str
    country: str  # ISO 3166-1 alpha-2
    latitude: float
    longitude: float
    phone: str = ""
    email: str | None = None
    company: str = ""


@dataclass(frozen=True, slots=True)
class Parcel:
    weight_g: float
    length_mm: float
    width_mm: float
    height_mm: float


@dataclass(frozen=True, slots=True)
class ServiceOption:
    """A service a courier offers for a route: what it is called there, how long and what it costs."""

    service: str
    transit_hours: float | None
    cost: float
    currency: str


@dataclass(frozen=True, slots=True)
class Capabilities:
    name: str
    services: tuple[str, ...]
    labels: bool  # book() returns a printable label
    tracking_webhooks: bool  # the courier pushes tracking updates (else we would poll track())
    cancel_after_pickup: bool


@dataclass(frozen=True, slots=True)
class BookingRequest:
    """What to ship. ``idempotency_key`` is ours and stable per shipment: booking twice with the same key
    returns the first booking, so retries and killed workers never book a second pickup."""

    idempotency_key: str
    reference: str  # shown on the label: our order id
    origin: Place
    destination: Place
    parcel: Parcel
    service: str | None = None  # None: the courier's fastest
    ready_at: datetime | None = None  # the parcel is ready for pickup from then


@dataclass(frozen=True, slots=True)
class Booking:
    courier_shipment_id: str
    tracking_number: str
    service: str
    label_pdf: bytes
    pickup_from: datetime | None
    pickup_until: datetime | None
    estimated_delivery_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TrackingEvent:
    status: TrackingStatus
    occurred_at: datetime
    description: str = ""
    location: str = ""
    courier_code: str = ""  # the courier's own code, kept for operators


@dataclass(frozen=True, slots=True)
class Tracking:
    tracking_number: str
    status: TrackingStatus
    events: tuple[TrackingEvent, ...] = field(default_factory=tuple)  # oldest first
    estimated_delivery_at: datetime | None = None


class CourierError(Exception):
    """A courier call failed. ``retryable``: a timeout, a 5xx, a refused connection (try again later);
    otherwise the courier refused the request itself and repeating it cannot help."""

    retryable: bool = False
    code: str = "courier_error"

    def __init__(self, message: str, *, code: str | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable


class CourierUnavailable(CourierError):
    retryable = True
    code = "courier_unavailable"


class CourierRejected(CourierError):
    code = "courier_rejected"


class ShipmentNotFound(CourierError):
    code = "shipment_not_found"


class Courier(Protocol):
    """A courier. Implementations raise only CourierError (and its subclasses) for the courier's failures."""

    name: str

    async def capabilities(self) -> Capabilities: ...

    async def quote(self, origin: Place, destination: Place, parcel: Parcel) -> list[ServiceOption]: ...

    async def book(self, request: BookingRequest) -> Booking: ...

    async def track(self, tracking_number: str) -> Tracking: ...

    async def cancel(self, tracking_number: str) -> None:
        """Withdraw a booking that has not been picked up. Idempotent; ShipmentNotFound when unknown,
        CourierRejected when the courier has it already."""
        ...

    async def aclose(self) -> None: ...
