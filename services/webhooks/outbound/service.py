"""Outbound webhooks: endpoints scoped to an organization, fan-out of order events, delivery attempts.

The life of one event (an ``order_event`` row written in the order's own transaction):

1. ``publish_pending`` (woken after that commit, and by the reconciler) turns each unpublished event of a
   published kind into one pending ``webhook_delivery`` per enabled, subscribed endpoint of the order's
   organization and stamps the event ``published_at`` (events of other kinds and of organizations without
   endpoints too, so the unpublished set stays small). Unique (endpoint, event): a re-run adds nothing.
   An event that cannot be rendered is stamped too, with its ``publish_error``, and sent nowhere: it would
   fail the same way on every run and hold up its batch.
2. ``begin_attempt`` claims a pending, due delivery: counts the attempt and pushes ``next_attempt_at`` past
   the attempt's longest possible duration, then commits. The HTTP request happens outside any transaction
   (``sender.attempt``). A worker killed now leaves the delivery due again once the claim lapses: delivered
   at least once, never lost; the stable ``webhook-id`` lets receivers drop the duplicate. Claims count as
   attempts, so a delivery whose every attempt dies fails after the schedule's last, like one refused.
3. ``finish_attempt`` records the outcome: a 2xx delivers (and resets the endpoint's failure count);
   anything else schedules the next attempt per the retry schedule, or fails the delivery after the last.
   Every failed attempt counts against the endpoint; at ``disable_after`` in a row it is disabled and its
   pending deliveries are abandoned.

Services flush, never commit: the request or the job owns the transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from parts_catalog.sqltypes import utcnow
from services.accounts.models import Organization
from services.config import Settings
from services.db import serialize_writes
from services.errors import Conflict, InvalidRequest, NotFound
from services.loops import ItemFailures
from services.orders.events import PUBLISH_ORDER_EVENTS, event_type_of
from services.queue import enqueue_after_commit
from services.signing import new_secret
from services.webhooks.outbound.events import body_of, msg_id_of, payload_of
from services.webhooks.outbound.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from services.webhooks.outbound.repository import WebhookRepository
from services.webhooks.outbound.schemas import EndpointIn
from services.webhooks.outbound.sender import AttemptRequest, AttemptResult
from services.webhooks.outbound.ssrf import check_target

log = logging.getLogger(__name__)

DELIVER_WEBHOOK = "deliver_webhook"
MAX_ENDPOINTS_PER_ORGANIZATION = 20
# How long the old secret keeps signing after a rotation: a day for receivers to deploy the new one.
ROTATION_OVERLAP = timedelta(hours=24)


def deliver_job_id(delivery_id: uuid.UUID, attempts_made: int | str) -> str:
    """One job id per attempt: a re-sent wake-up for the same attempt runs once; the next attempt's is new."""
    return f"{DELIVER_WEBHOOK}:{delivery_id}:{attempts_made}"


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    allow_private: bool
    retry_schedule: tuple[float, ...]  # seconds before each retry
    disable_after: int
    timeout_s: float

    @classmethod
    def of(cls, settings: Settings) -> WebhookPolicy:
        return cls(
            allow_private=settings.webhooks_allow_private_targets,
            retry_schedule=tuple(settings.webhook_retry_schedule_s),
            disable_after=settings.webhook_disable_after_failures,
            timeout_s=settings.webhook_timeout_s,
        )

    @property
    def claim(self) -> timedelta:
        """How long an attempt in flight holds its delivery: well past the attempt's own time limit."""
        return timedelta(seconds=2 * self.timeout_s + 30)

    @property
    def hold(self) -> timedelta:
        """How long an attempt to a failing endpoint waits for the one in flight: the first retry delay."""
        return timedelta(seconds=self.retry_schedule[0] if self.retry_schedule else 1.0)

    @property
    def max_attempts(self) -> int:
        return len(self.retry_schedule) + 1

    def retry_delay(self, attempt: int) -> timedelta | None:
        """The wait after failed attempt number ``attempt`` (1-based); None after the last."""
        if attempt > len(self.retry_schedule):
            return None
        return timedelta(seconds=self.retry_schedule[attempt - 1])


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    events: int  # events stamped published
    deliveries: int  # deliveries created


@dataclass(frozen=True, slots=True)
class ClaimedAttempt:
    delivery_id: uuid.UUID
    number: int  # 1-based
    request: AttemptRequest


@dataclass(frozen=True, slots=True)
class Held:
    """The attempt waits: its endpoint is failing and another attempt to it is in flight."""

    until: datetime


class WebhookEndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"


class WebhookService:
    def __init__(self, session: AsyncSession, policy: WebhookPolicy) -> None:
        self.session = session
        self.policy = policy
        self.repo = WebhookRepository(session)

    # --- endpoints -------------------------------------------------------------------------------------

    async def register(
        self, body: EndpointIn, *, scope: uuid.UUID | None, now: datetime | None = None
    ) -> WebhookEndpoint:
        """Register an endpoint for ``scope``'s organization (operators, scope None: ``body``'s).

        Raises:
            InvalidRequest: ``organization_required`` (an operator gave none).
            NotFound: ``organization_not_found`` (unknown, or another organization than the caller's).
            InvalidWebhookUrl, WebhookTargetForbidden: see ``ssrf``.
            Conflict: ``webhook_endpoint_limit``.
        """
        organization_id = await self._organization(body.organization_id, scope=scope)
        target = await check_target(body.url, allow_private=self.policy.allow_private)
        if await self.repo.count_endpoints(organization_id) >= MAX_ENDPOINTS_PER_ORGANIZATION:
            raise Conflict(
                f"an organization has at most {MAX_ENDPOINTS_PER_ORGANIZATION} webhook endpoints",
                code="webhook_endpoint_limit",
            )
        endpoint = WebhookEndpoint(
            organization_id=organization_id,
            url=str(target.url),
            secret=new_secret(),
            description=body.description,
            event_types=sorted({t.value for t in body.event_types}),
            created_at=now or utcnow(),
        )
        self.session.add(endpoint)
        await self.session.flush()
        return endpoint

    async def _organization(self, given: uuid.UUID | None, *, scope: uuid.UUID | None) -> uuid.UUID:
        if scope is not None:
            if given not in (None, scope):  # another organization's: as if it did not exist
                raise NotFound("no such organization", code="organization_not_found")
            return scope
        if given is None:
            raise InvalidRequest(
                "an operator names the endpoint's organization", code="organization_required"
            )
        if await self.session.get(Organization, given) is None:
            raise NotFound(
                "no such organization", code="organization_not_found", details={"organization_id": str(given)}
            )
        return given

    async def endpoints(self, *, scope: uuid.UUID | None) -> Sequence[WebhookEndpoint]:
        return await self.repo.endpoints(visible_to=scope)

    async def endpoint(
        self, endpoint_id: uuid.UUID, *, scope: uuid.UUID | None, for_update: bool = False
    ) -> WebhookEndpoint:
        endpoint = await self.repo.endpoint(endpoint_id, visible_to=scope, for_update=for_update)
        if endpoint is None:
            raise WebhookEndpointNotFound(
                "no such webhook endpoint", details={"endpoint_id": str(endpoint_id)}
            )
        return endpoint

    async def delete(self, endpoint_id: uuid.UUID, *, scope: uuid.UUID | None) -> None:
        """Delete the endpoint with its delivery log; an attempt in flight finds nothing to record."""
        await serialize_writes(self.session)
        await self.repo.delete_endpoint(await self.endpoint(endpoint_id, scope=scope, for_update=True))
        await self.session.flush()

    async def enable(self, endpoint_id: uuid.UUID, *, scope: uuid.UUID | None) -> WebhookEndpoint:
        """Enable a disabled endpoint with a clean failure count. Deliveries abandoned meanwhile stay so."""
        await serialize_writes(self.session)
        endpoint = await self.endpoint(endpoint_id, scope=scope, for_update=True)
        endpoint.enabled = True
        endpoint.disabled_at = endpoint.disabled_reason = None
        endpoint.consecutive_failures = 0
        await self.session.flush()
        return endpoint

    async def rotate_secret(
        self, endpoint_id: uuid.UUID, *, scope: uuid.UUID | None, now: datetime | None = None
    ) -> WebhookEndpoint:
        """A new secret; the current one keeps signing alongside it for ``ROTATION_OVERLAP`` (a secret
        rotated out earlier stops at once)."""
        now = now or utcnow()
        await serialize_writes(self.session)
        endpoint = await self.endpoint(endpoint_id, scope=scope, for_update=True)
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
        endpoint.secret = new_secret()
        await self.session.flush()
        return endpoint

    async def deliveries(
        self, endpoint_id: uuid.UUID, *, scope: uuid.UUID | None, cursor: uuid.UUID | None, limit: int
    ) -> tuple[list[WebhookDelivery], uuid.UUID | None]:
        """The endpoint's delivery log, newest first; ``cursor`` is the previous page's last delivery."""
        endpoint = await self.endpoint(endpoint_id, scope=scope)
        before = None
        if cursor is not None:
            last = await self.repo.delivery(cursor)
            if last is None or last.endpoint_id != endpoint.id:
                raise InvalidRequest("unknown cursor", code="invalid_cursor")
            before = (last.created_at, last.id)
        found = list(await self.repo.deliveries_page(endpoint.id, before=before, limit=limit + 1))
        more = len(found) > limit
        return found[:limit], found[limit - 1].id if more else None

    # --- publishing ------------------------------------------------------------------------------------

    async def publish_pending(self, *, limit: int, now: datetime | None = None) -> PublishOutcome:
        """Fan out up to ``limit`` unpublished events; each new delivery's first attempt is enqueued after
        the commit (and found by ``due_deliveries`` should that wake-up be lost)."""
        now = now or utcnow()
        await serialize_writes(self.session)
        rows = await self.repo.unpublished_events(limit=limit)
        if not rows:
            return PublishOutcome(events=0, deliveries=0)
        # The events customers receive, with their types (other kinds are only stamped published).
        published = [
            (event, order, found) for event, order in rows if (found := event_type_of(event.kind)) is not None
        ]
        endpoints: dict[uuid.UUID, list[WebhookEndpoint]] = defaultdict(list)
        for endpoint in await self.repo.enabled_endpoints_of(
            {order.organization_id for _, order, _ in published}
        ):
            endpoints[endpoint.organization_id].append(endpoint)
        created: list[WebhookDelivery] = []
        # Rendering is pure: an event that fails once fails on every run, so it is marked failed with its
        # error (and stamped published below) rather than holding up its batch for ever.
        failures = ItemFailures[int](PUBLISH_ORDER_EVENTS)
        for event, order, event_type in published:
            assert event.id is not None  # a stored row
            with failures.item(event.id):
                payload = payload_of(event, order, event_type)
                body_of(payload)  # the bytes each attempt will send: they must exist
                created += [
                    WebhookDelivery(
                        endpoint_id=endpoint.id,
                        order_event_id=event.id,
                        order_id=order.id,
                        event_type=event_type.value,
                        msg_id=msg_id_of(event.id),
                        payload=payload,
                        next_attempt_at=now,
                    )
                    for endpoint in endpoints[order.organization_id]
                    if endpoint.subscribes_to(event_type)
                ]
        for event_id, error in failures.errors.items():
            await self.repo.mark_unpublishable(event_id, error=error)
        self.session.add_all(created)
        await self.repo.mark_published([event.id for event, _ in rows if event.id is not None], at=now)
        await self.session.flush()
        for delivery in created:
            enqueue_after_commit(
                self.session, DELIVER_WEBHOOK, str(delivery.id), job_id=deliver_job_id(delivery.id, 0)
            )
        return PublishOutcome(events=len(rows), deliveries=len(created))

    async def due_deliveries(self, *, now: datetime, limit: int) -> Sequence[tuple[uuid.UUID, int]]:
        """(id, attempts made) of deliveries whose next attempt is due: their wake-up may have been lost."""
        return await self.repo.due_deliveries(now=now, limit=limit)

    # --- delivering ------------------------------------------------------------------------------------

    async def _lock(self, delivery_id: uuid.UUID) -> tuple[WebhookEndpoint, WebhookDelivery] | None:
        endpoint_id = await self.repo.endpoint_of_delivery(delivery_id)
        if endpoint_id is None:
            return None
        await serialize_writes(self.session)
        endpoint = await self.repo.endpoint(endpoint_id, for_update=True)
        delivery = await self.repo.delivery(delivery_id, for_update=True)
        if endpoint is None or delivery is None:
            return None
        return endpoint, delivery

    async def begin_attempt(
        self, delivery_id: uuid.UUID, *, now: datetime | None = None
    ) -> ClaimedAttempt | Held | None:
        """Claim the delivery's next attempt if it is pending and due; None: nothing to do (delivered,
        abandoned, not due yet, or another worker's attempt is in flight).

        An endpoint takes no more attempts at once than the failures it has left before it is disabled
        (``disable_after`` less its consecutive failures): each attempt in flight may fail, and an endpoint
        must never receive more failed attempts in a row than ``disable_after``. Past that, the attempt is
        ``Held`` until the first retry delay has passed. A failing endpoint near the limit is so tried one
        attempt at a time, like a circuit breaker's half-open state."""
        now = now or utcnow()
        locked = await self._lock(delivery_id)
        if locked is None:
            return None
        endpoint, delivery = locked
        due = delivery.next_attempt_at is not None and delivery.next_attempt_at <= now
        if delivery.status is not DeliveryStatus.PENDING or not due:
            return None
        if not endpoint.enabled:
            delivery.status, delivery.next_attempt_at = DeliveryStatus.ABANDONED, None
            delivery.last_error = "endpoint disabled"
            await self.session.flush()
            return None
        if delivery.attempts >= self.policy.max_attempts:
            # The last attempt began and never recorded its outcome (its worker was killed, or recording it
            # failed): without this, its lapsed claim would make it due again, and again, for ever.
            delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
            delivery.last_error = f"no outcome recorded for the last of {delivery.attempts} attempts"
            await self.session.flush()
            return None
        in_flight = await self.repo.attempts_in_flight(
            endpoint.id, started_after=now - self.policy.claim, excluding=delivery.id
        )
        if in_flight >= self.policy.disable_after - endpoint.consecutive_failures:
            delivery.next_attempt_at = now + self.policy.hold
            await self.session.flush()
            return Held(until=delivery.next_attempt_at)
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.next_attempt_at = now + self.policy.claim
        await self.session.flush()
        return ClaimedAttempt(
            delivery_id=delivery.id,
            number=delivery.attempts,
            request=AttemptRequest(
                url=endpoint.url,
                msg_id=delivery.msg_id,
                body=body_of(delivery.payload),
                secrets=tuple(endpoint.signing_secrets(now)),
            ),
        )

    async def finish_attempt(
        self, claimed: ClaimedAttempt, result: AttemptResult, *, now: datetime | None = None
    ) -> datetime | None:
        """Record the attempt's outcome. Returns when the next attempt is due, if there is one."""
        now = now or utcnow()
        locked = await self._lock(claimed.delivery_id)
        if locked is None:
            return None  # the endpoint was deleted meanwhile
        endpoint, delivery = locked
        if delivery.attempts != claimed.number:
            # The claim lapsed and another attempt started: that one's outcome is the one to keep.
            log.warning(
                "webhook delivery %s: outcome of stale attempt %s dropped", delivery.id, claimed.number
            )
            return None
        delivery.last_status_code, delivery.last_error = result.status_code, result.error
        delivery.attempt_log = [
            *delivery.attempt_log,
            {
                "n": claimed.number,
                "at": (delivery.last_attempt_at or now).isoformat(),
                "status_code": result.status_code,
                "error": result.error,
                "duration_ms": result.duration_ms,
            },
        ]
        if result.ok:
            # Delivered is delivered, even if the endpoint was disabled while this attempt was in flight.
            delivery.status = DeliveryStatus.DELIVERED
            delivery.delivered_at, delivery.next_attempt_at = now, None
            if endpoint.enabled:
                endpoint.consecutive_failures = 0
            await self.session.flush()
            return None
        if delivery.status is not DeliveryStatus.PENDING:  # abandoned while in flight
            await self.session.flush()
            return None
        endpoint.consecutive_failures += 1
        delay = self.policy.retry_delay(claimed.number)
        next_at = now + delay if delay is not None else None
        delivery.next_attempt_at = next_at
        if next_at is None:
            delivery.status = DeliveryStatus.FAILED
        if endpoint.enabled and endpoint.consecutive_failures >= self.policy.disable_after:
            await self._disable(endpoint, delivery, last_error=result.error or "", now=now)
            next_at = None
        await self.session.flush()
        return next_at

    async def _disable(
        self, endpoint: WebhookEndpoint, delivery: WebhookDelivery, *, last_error: str, now: datetime
    ) -> None:
        reason = f"{endpoint.consecutive_failures} consecutive failed attempts; the last: {last_error}"
        endpoint.enabled = False
        endpoint.disabled_at = now
        endpoint.disabled_reason = reason[:200]
        if delivery.status is DeliveryStatus.PENDING:
            delivery.status, delivery.next_attempt_at = DeliveryStatus.ABANDONED, None
        await self.session.flush()
        abandoned = await self.repo.abandon_pending(endpoint.id, reason="endpoint disabled")
        log.warning(
            "webhook endpoint %s disabled (%s); %s pending deliveries abandoned",
            endpoint.id,
            reason,
            abandoned,
        )
