"""Inbound partner webhooks: verify, store, acknowledge; process later in a worker.

Nothing is stored unless the request is authentic, fresh, small enough and well-formed, and its tracking
update is one the shipping tables can hold (``services.webhooks.inbound.stored``); every refusal is counted in
``spareflow_webhook_rejections_total``. An accepted event is stored under its (source, event id), with the
tracking update as it was read, which makes a replay a no-op for as long as the row is kept
(``webhook_dedup_hours``, 72 h at least), and a wake-up job is sent after the commit; the reconciler finds
events whose wake-up was lost. The answer never depends on the tracking number: a partner cannot learn from
us which numbers exist.

Applying an event counts an attempt before it starts (``begin``); one that fails for a reason nobody
foresaw is retried up to ``max_job_attempts`` and then parked with its error (``fail``), for an operator to
read and retry (``parked``, ``retry``). Parked events are never purged.

Two schemes:

- ``/webhooks/partners/{partner}``: Standard Webhooks (``services.signing``), checked against the
  partner's unexpired secrets; the body is our documented partner format (``PartnerEvent``).
- ``/webhooks/karrio``: Karrio does not sign. Its ``X-Event-Id`` header carries the subscription's secret
  itself, compared in constant time with the secrets stored for the ``karrio`` partner.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from parts_catalog.sqltypes import utcnow
from services.accounts.models import Partner
from services.accounts.repository import AccountsRepository
from services.config import Settings
from services.couriers.ports import Tracking, TrackingEvent, TrackingStatus
from services.couriers.providers.karrio.mapping import parse_webhook
from services.couriers.registry import KARRIO_PARTNER
from services.db import serialize_writes
from services.errors import (
    Conflict,
    DomainError,
    MalformedRequest,
    NotAuthenticated,
    NotFound,
    PayloadTooLarge,
)
from services.observability.metrics import WEBHOOK_REJECTIONS
from services.queue import enqueue_after_commit
from services.shipping.service import ShippingService
from services.signing import VerificationFailed, verify
from services.validation import InputRefused, UtcDatetime, loads
from services.webhooks.inbound.models import InboundStatus, InboundWebhook
from services.webhooks.inbound.partners import PartnerSecrets
from services.webhooks.inbound.stored import StoredTracking

PROCESS_INBOUND = "process_inbound_webhook"
KARRIO_HEADER = "x-event-id"  # carries the subscription secret itself
# Listed for operators at once; more parked than this is an outage to fix first, not a list to read.
PARKED_LISTED = 1000
Text = Annotated[str, StringConstraints(max_length=500)]


class WebhookPayloadInvalid(DomainError):
    status = 422
    code = "webhook_payload_invalid"


class PartnerTracking(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tracking_number: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    status: TrackingStatus
    occurred_at: UtcDatetime
    description: Text = ""
    location: Annotated[str, StringConstraints(max_length=200)] = ""
    estimated_delivery_at: UtcDatetime | None = None


class PartnerEvent(BaseModel):
    """What a logistics partner sends us: one tracking event of one parcel."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["tracking.updated"]
    data: PartnerTracking

    def tracking(self) -> Tracking:
        data = self.data
        event = TrackingEvent(
            status=data.status,
            occurred_at=data.occurred_at,
            description=data.description,
            location=data.location,
            courier_code=data.status.value,
        )
        return Tracking(
            tracking_number=data.tracking_number,
            status=data.status,
            events=(event,),
            estimated_delivery_at=data.estimated_delivery_at,
        )


@dataclass(frozen=True, slots=True)
class Receipt:
    inbound_id: uuid.UUID | None
    duplicate: bool


def _refuse(source: str, reason: str, error: DomainError) -> DomainError:
    WEBHOOK_REJECTIONS.labels(source=source, reason=reason).inc()
    return error


def _invalid(source: str, message: str, exc: ValidationError) -> DomainError:
    details = [{"loc": list(e["loc"]), "message": e["msg"]} for e in exc.errors()]
    return _refuse(source, "invalid_payload", WebhookPayloadInvalid(message, details=details))


def _storable(source: str, tracking: Tracking | None) -> StoredTracking | None:
    try:
        return StoredTracking.of(tracking) if tracking is not None else None
    except ValidationError as exc:
        raise _invalid(source, "a tracking update we could never apply", exc) from None


def wake(session: AsyncSession, inbound_id: uuid.UUID) -> None:
    """Have a worker apply the event once the transaction commits (one queued wake-up per event)."""
    enqueue_after_commit(session, PROCESS_INBOUND, str(inbound_id), job_id=f"{PROCESS_INBOUND}:{inbound_id}")


def too_large(source: str, limit: int) -> DomainError:
    return _refuse(source, "too_large", PayloadTooLarge(f"webhook bodies are limited to {limit} bytes"))


_REFUSALS: dict[str, tuple[type[DomainError], str]] = {
    "missing_headers": (MalformedRequest, "webhook_headers_missing"),
    "invalid_headers": (MalformedRequest, "webhook_headers_invalid"),
    "timestamp_too_old": (MalformedRequest, "webhook_timestamp_out_of_tolerance"),
    "timestamp_in_future": (MalformedRequest, "webhook_timestamp_out_of_tolerance"),
    "invalid_signature": (NotAuthenticated, "webhook_signature_invalid"),
}


def _json(source: str, body: bytes) -> dict[str, Any]:
    # The API's strict decoder (NaN, huge numbers, deep nesting, control characters), as on every route.
    details = None
    try:
        payload = loads(body)
    except InputRefused as refused:
        payload, details = None, [refused.detail()]
    if not isinstance(payload, dict):
        raise _refuse(
            source,
            "not_json",
            MalformedRequest(
                "the body is not a JSON object", code="webhook_payload_invalid", details=details
            ),
        )
    return payload


class InboundWebhooks:
    def __init__(self, session: AsyncSession, *, dedup: timedelta) -> None:
        self.session = session
        self.dedup = dedup
        self.accounts = AccountsRepository(session)

    @classmethod
    def configured(cls, session: AsyncSession, settings: Settings) -> InboundWebhooks:
        return cls(session, dedup=timedelta(hours=settings.webhook_dedup_hours))

    async def secrets_of(self, partner_slug: str, *, now: datetime) -> tuple[Partner | None, list[str]]:
        partner = await self.accounts.by_slug(Partner, partner_slug)
        if partner is None:
            return None, []
        return partner, await PartnerSecrets(self.session).current(partner.id, now=now)

    async def receive_partner(
        self, partner_slug: str, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
    ) -> Receipt:
        now = now or utcnow()
        partner, secrets = await self.secrets_of(partner_slug, now=now)
        # An unknown partner is refused like a bad signature, and counted without its made-up name.
        source = partner.slug if partner is not None else "unknown"
        try:
            verified = verify(secrets, headers, body, now=now)
        except VerificationFailed as exc:
            kind, code = _REFUSALS[exc.reason]
            raise _refuse(source, exc.reason, kind(str(exc), code=code)) from None
        payload = _json(source, body)
        try:
            event = PartnerEvent.model_validate(payload)
        except ValidationError as exc:
            raise _invalid(source, "not a partner tracking event", exc) from None
        tracking = _storable(source, event.tracking())
        return await self._store(source, verified.msg_id, event.type, payload, tracking, now=now)

    async def receive_karrio(
        self, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
    ) -> Receipt:
        now = now or utcnow()
        _, secrets = await self.secrets_of(KARRIO_PARTNER, now=now)
        offered = headers.get(KARRIO_HEADER, "").encode()
        # Each stored secret is compared in constant time; all are compared, so timing tells nothing.
        if not offered or not any([hmac.compare_digest(offered, s.encode()) for s in secrets]):
            reason = "missing_headers" if not offered else "invalid_signature"
            raise _refuse(
                KARRIO_PARTNER,
                reason,
                NotAuthenticated("unknown Karrio webhook secret", code="webhook_signature_invalid"),
            )
        payload = _json(KARRIO_PARTNER, body)
        try:
            event = parse_webhook(payload)
        except ValueError as exc:
            raise _refuse(KARRIO_PARTNER, "invalid_payload", WebhookPayloadInvalid(str(exc))) from None
        tracking = _storable(KARRIO_PARTNER, event.tracking)
        return await self._store(KARRIO_PARTNER, event.event_id, event.event_type, payload, tracking, now=now)

    async def _store(
        self,
        source: str,
        event_id: str,
        event_type: str,
        payload: dict[str, Any],
        tracking: StoredTracking | None,
        *,
        now: datetime,
    ) -> Receipt:
        row = InboundWebhook(
            source=source,
            event_id=event_id[:200],
            event_type=event_type[:64],
            payload=payload,
            tracking=tracking.model_dump(mode="json") if tracking is not None else None,
            received_at=now,
        )
        if tracking is None:
            # Kept for deduplication only: there is nothing to apply.
            row.status, row.outcome, row.processed_at = InboundStatus.IGNORED, "not a tracking event", now
        try:
            async with self.session.begin_nested():
                self.session.add(row)
        except IntegrityError:
            # The unique (source, event id) makes a replay, however concurrent, a no-op.
            return Receipt(inbound_id=await self._existing(source, event_id), duplicate=True)
        if tracking is not None:
            wake(self.session, row.id)
        return Receipt(inbound_id=row.id, duplicate=False)

    async def _existing(self, source: str, event_id: str) -> uuid.UUID | None:
        query = select(InboundWebhook.id).where(
            InboundWebhook.source == source, InboundWebhook.event_id == event_id[:200]
        )
        return (await self.session.exec(query)).first()

    # --- processing (workers) ----------------------------------------------------------------------------

    async def _locked(self, inbound_id: uuid.UUID) -> InboundWebhook | None:
        await serialize_writes(self.session)
        return await self.session.get(InboundWebhook, inbound_id, with_for_update=True)

    async def begin(
        self, inbound_id: uuid.UUID, *, max_attempts: int, now: datetime | None = None
    ) -> int | None:
        """Count an attempt at applying the event, before it starts; returns its number, or None when there
        is nothing to do. An event whose attempts are used up is parked instead: the attempts that never
        recorded their end were workers killed while applying it, which the next one would be too."""
        row = await self._locked(inbound_id)
        if row is None or row.status is not InboundStatus.RECEIVED:
            return None
        if row.attempts >= max_attempts:
            error = row.last_error or f"no attempt of {row.attempts} finished (a worker stopped during each)"
            self._park(row, error, now=now or utcnow())
            await self.session.flush()
            return None
        row.attempts += 1
        await self.session.flush()
        return row.attempts

    async def fail(
        self, inbound_id: uuid.UUID, *, error: str, park: bool, now: datetime | None = None
    ) -> None:
        """Record why an attempt failed; ``park``: stop retrying, an operator decides."""
        row = await self._locked(inbound_id)
        if row is None or row.status is not InboundStatus.RECEIVED:
            return
        row.last_error = error[:500]
        if park:
            self._park(row, row.last_error, now=now or utcnow())
        await self.session.flush()

    @staticmethod
    def _park(row: InboundWebhook, error: str, *, now: datetime) -> None:
        row.status = InboundStatus.PARKED
        row.last_error = error[:500]
        row.outcome = f"parked after {row.attempts} attempts"
        row.processed_at = now

    async def parked(self) -> list[InboundWebhook]:
        """Operators: parked events, oldest first."""
        query = (
            select(InboundWebhook)
            .where(InboundWebhook.status == InboundStatus.PARKED)
            .order_by(col(InboundWebhook.received_at))
            .limit(PARKED_LISTED)
        )
        return list((await self.session.exec(query)).all())

    async def retry(self, inbound_id: uuid.UUID) -> InboundWebhook:
        """Operators: apply a parked event again, with its attempts counted afresh (after fixing what made
        it fail). Its last error stays until it is applied."""
        row = await self._locked(inbound_id)
        if row is None:
            raise NotFound("no such inbound webhook", code="inbound_webhook_not_found")
        if row.status is not InboundStatus.PARKED:
            raise Conflict(
                f"an inbound webhook that is {row.status} is not waiting for an operator",
                code="inbound_webhook_not_parked",
                details={"status": row.status.value},
            )
        row.status, row.attempts, row.outcome, row.processed_at = InboundStatus.RECEIVED, 0, None, None
        wake(self.session, row.id)
        await self.session.flush()
        return row

    async def process(
        self, inbound_id: uuid.UUID, shipping: ShippingService, *, now: datetime | None = None
    ) -> str:
        """Apply a stored event to its shipment. Idempotent: a processed event is never applied again."""
        now = now or utcnow()
        row = await self._locked(inbound_id)
        if row is None or row.status is not InboundStatus.RECEIVED:
            return "nothing to do"
        tracking = (
            StoredTracking.model_validate(row.tracking).tracking()
            if row.tracking is not None
            else _as_read_before_0008(row)
        )
        outcome = "not a tracking event"
        if tracking is not None:
            outcome = await shipping.apply_tracking(row.source, tracking, now=now)
        applied = tracking is not None and outcome != "unknown_tracking_number"
        row.status = InboundStatus.PROCESSED if applied else InboundStatus.IGNORED
        row.outcome = outcome[:200]
        row.last_error = None
        row.processed_at = now
        await self.session.flush()
        return outcome

    async def unprocessed(self, *, received_before: datetime, limit: int) -> list[uuid.UUID]:
        query = (
            select(InboundWebhook.id)
            .where(
                InboundWebhook.status == InboundStatus.RECEIVED,
                col(InboundWebhook.received_at) < received_before,
            )
            .order_by(col(InboundWebhook.received_at))
            .limit(limit)
        )
        return list((await self.session.exec(query)).all())

    async def purge(self, *, now: datetime) -> int:
        """Forget processed and ignored events past the deduplication window; parked ones wait for an
        operator, however old."""
        query = delete(InboundWebhook).where(
            col(InboundWebhook.status).in_([InboundStatus.PROCESSED, InboundStatus.IGNORED]),
            col(InboundWebhook.received_at) < now - self.dedup,
        )
        result = await self.session.exec(query)
        return int(result.rowcount or 0)


def _as_read_before_0008(row: InboundWebhook) -> Tracking | None:
    """Events stored before migration 0008 kept only their payload: read it as it was read then (by source).
    None is left once every such event is processed, parked or purged."""
    if row.source == KARRIO_PARTNER:
        return parse_webhook(row.payload).tracking
    return PartnerEvent.model_validate(row.payload).tracking()
