"""The built-in courier: for the embedded demo and for sites without a courier contract.

I/O only: its table (``table.LocalParcel``) read and written, and its webhooks posted. What a booking plans,
what a parcel means in our words and what each webhook says is ``mapping`` (pure).

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
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from parts_catalog.sqltypes import utcnow
from services.couriers.ports import (
    Booking,
    BookingRequest,
    Capabilities,
    Parcel,
    Place,
    ServiceOption,
    ShipmentNotFound,
    Tracking,
)
from services.couriers.providers.local import mapping
from services.couriers.providers.local.mapping import NAME, Refusal
from services.couriers.providers.local.table import LocalParcel
from services.db import SessionFactory, transaction
from services.signing import sign

# The name it logged under before it moved here: operators' log filters and alerts match on it.
log = logging.getLogger("services.couriers.local")

# A driver's claim on the parcels it reports (``LocalCourier._claim``): a batch takes milliseconds per event,
# so this is ample; a batch that outlasts it (our API answering slowly) may be reported again by another
# driver, which the receiver's deduplication absorbs. Short, so that a killed worker's parcels move on soon.
_DRIVE_CLAIM = timedelta(seconds=10)
# Parcels claimed (and reported side by side) at a time.
_DRIVE_BATCH = 20


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
        return mapping.capabilities()

    async def quote(self, origin: Place, destination: Place, parcel: Parcel) -> list[ServiceOption]:
        return mapping.service_options(origin, destination)

    async def book(self, request: BookingRequest) -> Booking:
        number = mapping.tracking_number_for(request.idempotency_key)
        async with transaction(self.sessions) as session:
            parcel = await session.get(LocalParcel, number)
            if parcel is None:
                parcel = mapping.plan(number, request, now=utcnow(), time_scale=self.time_scale)
                session.add(parcel)
        return mapping.booking(parcel)

    async def track(self, tracking_number: str) -> Tracking:
        now = utcnow()
        async with transaction(self.sessions) as session:
            parcel = await self._parcel(session, tracking_number)
        return mapping.tracking(parcel, tracking_number, now=now)

    async def cancel(self, tracking_number: str) -> None:
        now = utcnow()
        async with transaction(self.sessions) as session:
            parcel = await self._parcel(session, tracking_number, for_update=True)
            if parcel.cancelled_at is not None:
                return
            parcel.plan = mapping.cancelled_plan(parcel, now=now)
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
    ) -> Refusal | None:
        """Post one event; None when it was acknowledged."""
        msg_id, body = mapping.webhook(parcel, index, entry)
        headers = sign([secret], msg_id, utcnow(), body)
        try:
            response = await self._http.post(
                url, content=body, headers={**headers, "content-type": "application/json"}
            )
        except httpx.HTTPError as exc:
            return Refusal(f"{type(exc).__name__}: {exc}", final=False)
        if response.is_success:
            return None
        return mapping.refusal(response.status_code, response.text)

    async def _record(
        self, tracking_number: str, reported: int, refusal: Refusal | None, *, now: datetime
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
            parcel.next_due_at = mapping.resend_at(due, now=now, attempts=parcel.attempts)
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
