"""The built-in courier: for the embedded demo and for sites without a courier contract.

It behaves like a courier on the other side of the network. Booking is idempotent per key (the tracking
number is derived from it). A booking plans the parcel's day from the distance: pickup once the parcel is
ready, transit at road speed, out for delivery, delivered. ``time_scale`` compresses that plan for demos (an
hour passes in a second at 3600). As each planned event comes due, ``drive`` reports it the way a partner
does: a Standard-Webhooks-signed POST over real HTTP to our own ``/webhooks/partners/local``, resent until
it is acknowledged, but not for ever: a refusal that resending cannot change (a 4xx other than 408, 409 and
429: the ``local`` partner's secret retired, a body too large) parks the parcel at once, and any other
failure backs off and parks it after ``max_attempts`` sends of the same event. A parked parcel keeps its last
error and waits for an operator (``resume``, ``spareflow couriers resume-local``).

Its state lives in its own table, written only here, in transactions of its own: what the courier knows is
not what Spareflow knows until a webhook says so.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from parts_catalog.sqltypes import UTCDateTime, utcnow
from services.couriers.labels import label_pdf
from services.couriers.ports import (
    Booking,
    BookingRequest,
    Capabilities,
    CourierRejected,
    Parcel,
    Place,
    ServiceOption,
    ShipmentNotFound,
    Tracking,
    TrackingEvent,
    TrackingStatus,
)
from services.db import SessionFactory, transaction
from services.routing.geo import GeoPoint, haversine_km
from services.routing.transit import TransitRule
from services.signing import sign

log = logging.getLogger(__name__)

NAME = "local"
T = TrackingStatus


class LocalParcel(SQLModel, table=True):
    __tablename__ = "local_courier_parcel"

    tracking_number: str = Field(primary_key=True, max_length=32)
    idempotency_key: str = Field(max_length=80, unique=True)
    reference: str = Field(max_length=100)
    service: str = Field(max_length=32)
    origin: dict[str, Any] = Field(sa_type=sa.JSON)
    destination: dict[str, Any] = Field(sa_type=sa.JSON)
    parcel: dict[str, Any] = Field(sa_type=sa.JSON)
    booked_at: datetime = Field(sa_type=UTCDateTime)
    pickup_from: datetime = Field(sa_type=UTCDateTime)
    pickup_until: datetime = Field(sa_type=UTCDateTime)
    estimated_delivery_at: datetime = Field(sa_type=UTCDateTime)
    # The parcel's planned (and, once cancelled, actual) events: {status, at, description, location}.
    plan: list[dict[str, Any]] = Field(sa_type=sa.JSON)
    reported: int = 0  # how many of ``plan`` our receiver has acknowledged
    # When the next unreported event comes due (or may be resent); None once all are reported, or parked.
    next_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Sends of the next unreported event that were not acknowledged; back to 0 once one is.
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    # Set when resending stopped (refused for good, or ``max_attempts`` used up) until an operator resumes it.
    parked_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)


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
# A driver's claim on the parcels it reports (``LocalCourier._claim``): a batch takes milliseconds per event,
# so this is ample; a batch that outlasts it (our API answering slowly) may be reported again by another
# driver, which the receiver's deduplication absorbs. Short, so that a killed worker's parcels move on soon.
_DRIVE_CLAIM = timedelta(seconds=10)
# Parcels claimed (and reported side by side) at a time.
_DRIVE_BATCH = 20
# The wait after the first failed send, quadrupled after each further one (1, 4, 16 min, ...): long enough
# for our API to come back from a restart or a deploy before ``max_attempts`` parks the parcel. Real time,
# whatever ``time_scale``: it is our API that is away, not the parcel that travels.
_RESEND_BACKOFF = timedelta(minutes=1)
# Answers that may change when the same event is sent again (a timeout, a conflict, a rate limit); every
# other 4xx is a refusal of the event itself.
_RETRYABLE_4XX = frozenset({408, 409, 429})


@dataclass(frozen=True, slots=True)
class _Refusal:
    """An event our receiver did not acknowledge; ``final`` when sending it again cannot change that."""

    error: str
    final: bool


def tracking_number_for(idempotency_key: str) -> str:
    """Derived from the key, so a booking retried after a crash finds the first one by its primary key."""
    return "SFL" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:12].upper()


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


class LocalCourier:
    name = NAME

    def __init__(
        self,
        sessions: SessionFactory,
        *,
        time_scale: float = 1.0,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        max_attempts: int = 4,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.sessions = sessions
        self.time_scale = time_scale
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.max_attempts = max_attempts
        self._http = http or httpx.AsyncClient(timeout=10.0, follow_redirects=False)
        self._owns_http = http is None

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def capabilities(self) -> Capabilities:
        return Capabilities(
            name=NAME,
            services=tuple(rule.level for rule in _SERVICES),
            labels=True,
            tracking_webhooks=True,
            cancel_after_pickup=False,
        )

    async def quote(self, origin: Place, destination: Place, parcel: Parcel) -> list[ServiceOption]:
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

    async def book(self, request: BookingRequest) -> Booking:
        number = tracking_number_for(request.idempotency_key)
        async with transaction(self.sessions) as session:
            parcel = await session.get(LocalParcel, number)
            if parcel is None:
                parcel = self._plan(number, request, now=utcnow())
                session.add(parcel)
        return self._booking(parcel)

    def _plan(self, number: str, request: BookingRequest, *, now: datetime) -> LocalParcel:
        km = _km(request.origin, request.destination)
        _check_route(request.destination, km)
        offered = {rule.level: rule for rule in _offered(km)}
        service = request.service or next(iter(offered))
        rule = offered.get(service)
        if rule is None:
            raise CourierRejected(
                f"service {service!r} does not serve this route", code="service_unavailable"
            )
        scale = self.time_scale
        ready = max(now, request.ready_at or now)
        pickup = ready + _PICKUP_DELAY / scale
        transit = rule.duration(km) / scale
        delivered = pickup + transit
        origin, destination = request.origin.city, request.destination.city
        plan = [
            _event(T.PICKED_UP, pickup, "Picked up from the microfactory", origin),
            _event(
                T.IN_TRANSIT, pickup + min(transit / 4, timedelta(minutes=10) / scale), "On the way", origin
            ),
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
            plan=plan,
            next_due_at=pickup,
        )

    def _booking(self, parcel: LocalParcel) -> Booking:
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

    async def track(self, tracking_number: str) -> Tracking:
        now = utcnow()
        async with transaction(self.sessions) as session:
            parcel = await self._parcel(session, tracking_number)
        events = tuple(_tracking_event(e) for e in parcel.plan if datetime.fromisoformat(e["at"]) <= now)
        return Tracking(
            tracking_number=tracking_number,
            status=events[-1].status if events else T.PENDING,
            events=events,
            estimated_delivery_at=None if parcel.cancelled_at else parcel.estimated_delivery_at,
        )

    async def cancel(self, tracking_number: str) -> None:
        now = utcnow()
        async with transaction(self.sessions) as session:
            parcel = await self._parcel(session, tracking_number, for_update=True)
            if parcel.cancelled_at is not None:
                return
            happened = [e for e in parcel.plan if datetime.fromisoformat(e["at"]) <= now]
            if happened:
                raise CourierRejected("the parcel has been picked up already", code="already_picked_up")
            parcel.plan = [_event(T.CANCELLED, now, "Booking cancelled by the sender", parcel.origin["city"])]
            parcel.cancelled_at = parcel.next_due_at = now
            parcel.reported = 0

    async def _parcel(
        self, session: AsyncSession, tracking_number: str, *, for_update: bool = False
    ) -> LocalParcel:
        query = select(LocalParcel).where(LocalParcel.tracking_number == tracking_number)
        if for_update:
            query = query.with_for_update()
        parcel = (await session.exec(query)).first()
        if parcel is None:
            raise ShipmentNotFound(f"no parcel {tracking_number!r}")
        return parcel

    # --- the courier's side: report what happened -------------------------------------------------------

    async def drive(self, *, now: datetime | None = None, limit: int = 200) -> int:
        """Send every event that has come due as a signed webhook; returns how many were acknowledged.

        Parcels are claimed in batches (``_claim``) and a batch's parcels are reported side by side, each
        parcel's events in order. Sent outside any transaction; what was acknowledged is recorded after,
        which ends the claim. A send that fails (our API down, a 5xx) is tried again after a backoff (the
        receiver deduplicates by ``webhook-id``), up to ``max_attempts`` times; one refused for good parks
        the parcel at once."""
        url, secret = self.webhook_url, self.webhook_secret
        if url is None or secret is None:
            return 0
        now = now or utcnow()
        acknowledged = 0
        driven: set[str] = set()
        while len(driven) < limit:
            batch = await self._claim(now=now, limit=min(_DRIVE_BATCH, limit - len(driven)), skip=driven)
            if not batch:
                break
            driven.update(parcel.tracking_number for parcel in batch)
            sent = await asyncio.gather(*(self._drive(parcel, now, url, secret) for parcel in batch))
            acknowledged += sum(sent)
        return acknowledged

    async def _claim(self, *, now: datetime, limit: int, skip: set[str]) -> list[LocalParcel]:
        """Due parcels, claimed for this driver until ``now + _DRIVE_CLAIM``.

        The cron that drives the courier ticks every second on whichever worker is free, and a run can take
        longer than that, so drivers overlap. Without a claim each would post every due event, and runs
        taking longer under that load would pile up in the queue. A claimed parcel's ``next_due_at`` lies
        past the claim, so other drivers pass it by; recording what was acknowledged sets it back to the
        next event's time. A driver that dies leaves its parcels to come due again when the claim lapses.

        One UPDATE picks and claims: PostgreSQL skips rows another driver is claiming, and the UPDATE's own
        condition re-checks each row; on SQLite the statement takes the database's write lock first.
        """
        due = (
            select(LocalParcel.tracking_number)
            .where(col(LocalParcel.next_due_at) <= now, col(LocalParcel.tracking_number).not_in(skip))
            .order_by(col(LocalParcel.next_due_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claim = (
            sa.update(LocalParcel)
            .where(col(LocalParcel.tracking_number).in_(due), col(LocalParcel.next_due_at) <= now)
            .values(next_due_at=now + _DRIVE_CLAIM)
            .returning(col(LocalParcel.tracking_number))
            .execution_options(synchronize_session=False)
        )
        async with transaction(self.sessions) as session:
            numbers = list((await session.exec(claim)).scalars())
            if not numbers:
                return []
            query = select(LocalParcel).where(col(LocalParcel.tracking_number).in_(numbers))
            return list((await session.exec(query)).all())

    async def _drive(self, parcel: LocalParcel, now: datetime, url: str, secret: str) -> int:
        """Report the parcel's events due by ``now``, in order, up to the first not acknowledged; record how
        far it got (which also ends the claim). Returns how many were acknowledged."""
        reported = parcel.reported
        refusal = None
        for index, entry in enumerate(parcel.plan[reported:], start=reported):
            if datetime.fromisoformat(entry["at"]) > now:
                break
            refusal = await self._report(parcel, index, entry, url, secret)
            if refusal is not None:
                break
            reported = index + 1
        await self._record(parcel.tracking_number, reported, refusal, now=now)
        return reported - parcel.reported

    async def _report(
        self, parcel: LocalParcel, index: int, entry: dict[str, Any], url: str, secret: str
    ) -> _Refusal | None:
        """Post one event; None when it was acknowledged."""
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
        headers = sign([secret], msg_id, utcnow(), body)
        try:
            response = await self._http.post(
                url, content=body, headers={**headers, "content-type": "application/json"}
            )
        except httpx.HTTPError as exc:
            return _Refusal(f"{type(exc).__name__}: {exc}", final=False)
        if response.is_success:
            return None
        status = response.status_code
        final = 400 <= status < 500 and status not in _RETRYABLE_4XX
        return _Refusal(f"{status} {response.text[:200]}", final=final)

    async def _record(
        self, tracking_number: str, reported: int, refusal: _Refusal | None, *, now: datetime
    ) -> None:
        async with transaction(self.sessions) as session:
            parcel = await self._parcel(session, tracking_number, for_update=True)
            # Another driver may have got further, or a cancel may have replaced the plan meanwhile.
            if reported > parcel.reported and reported <= len(parcel.plan):
                parcel.reported = reported
                parcel.attempts, parcel.last_error = 0, None
            remaining = parcel.plan[parcel.reported :]
            parcel.next_due_at = datetime.fromisoformat(remaining[0]["at"]) if remaining else None
            # The refused event is still the next one to report (no other driver got it acknowledged).
            if refusal is None or not remaining or parcel.reported != reported:
                return
            parcel.attempts += 1
            parcel.last_error = refusal.error[:500]
            if refusal.final or parcel.attempts >= self.max_attempts:
                parcel.next_due_at, parcel.parked_at = None, now
                log.error(
                    "local courier: parcel %s parked after %d unacknowledged sends of event %d: %s",
                    tracking_number,
                    parcel.attempts,
                    parcel.reported,
                    refusal.error,
                )
                return
            due = datetime.fromisoformat(remaining[0]["at"])
            parcel.next_due_at = max(due, now + _RESEND_BACKOFF * 4 ** (parcel.attempts - 1))
            log.warning(
                "local courier: event %d of %s not acknowledged (send %d of %d): %s",
                parcel.reported,
                tracking_number,
                parcel.attempts,
                self.max_attempts,
                refusal.error,
            )

    async def resume(self, tracking_numbers: Sequence[str] = (), *, now: datetime | None = None) -> list[str]:
        """Operators: report parked parcels again (all of them, or those given), with attempts counted
        afresh, once the cause is fixed. Returns the tracking numbers resumed."""
        now = now or utcnow()
        query = (
            sa.update(LocalParcel)
            .where(col(LocalParcel.parked_at).is_not(None))
            .values(parked_at=None, attempts=0, next_due_at=now)
            .returning(col(LocalParcel.tracking_number))
            .execution_options(synchronize_session=False)
        )
        if tracking_numbers:
            query = query.where(col(LocalParcel.tracking_number).in_(list(tracking_numbers)))
        async with transaction(self.sessions) as session:
            return sorted((await session.exec(query)).scalars())
