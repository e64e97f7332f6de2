"""Outbound webhook jobs: fan order events out, attempt a delivery, and find what lost wake-ups left.

``publish_order_events`` is woken (one constant job id, so wake-ups coalesce) after an order event of a
published kind commits; ``deliver_webhook`` attempts one delivery and, after a failed attempt, enqueues
itself for the next one, deferred; ``reconcile_webhooks`` (cron) does both for whatever the database says is
due, so a Redis that drops wake-ups delays webhooks but never loses them.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError

from parts_catalog.sqltypes import utcnow
from services.db import transaction
from services.queue import enqueue_after_commit
from services.webhooks.outbound.sender import attempt
from services.webhooks.outbound.service import (
    DELIVER_WEBHOOK,
    Held,
    PublishOutcome,
    WebhookPolicy,
    WebhookService,
    deliver_job_id,
)
from services.workers.context import WorkerResources, resources

log = logging.getLogger(__name__)
# Events per transaction: a backlog is published in batches, each committed on its own.
PUBLISH_BATCH = 500
RECONCILE_BATCH = 1000


async def _publish(res: WorkerResources) -> PublishOutcome:
    policy = WebhookPolicy.of(res.settings)
    events = deliveries = 0
    while True:
        async with transaction(res.sessions, res.queue) as session:
            outcome = await WebhookService(session, policy).publish_pending(limit=PUBLISH_BATCH)
        events += outcome.events
        deliveries += outcome.deliveries
        if outcome.events < PUBLISH_BATCH:
            return PublishOutcome(events=events, deliveries=deliveries)


async def publish_order_events(ctx: dict[str, Any]) -> dict[str, int]:
    outcome = await _publish(resources(ctx))
    return {"events": outcome.events, "deliveries": outcome.deliveries}


async def _wake(res: WorkerResources, delivery_id: uuid.UUID, attempts_made: int | str, at: datetime) -> None:
    # Deferred until ``at``, which ``enqueue_after_commit`` cannot do; a Redis error is logged, as in
    # ``services.queue.send``, and the reconciler finds the delivery once it is due.
    try:
        await res.queue.enqueue_job(
            DELIVER_WEBHOOK,
            str(delivery_id),
            _job_id=deliver_job_id(delivery_id, attempts_made),
            _defer_until=at,
        )
    except (RedisError, OSError) as exc:
        log.warning("could not enqueue webhook delivery %s: %s; the reconciler will", delivery_id, exc)


async def deliver_webhook(ctx: dict[str, Any], delivery_id: str) -> str:
    """Attempt the delivery if it is pending and due. Idempotent: anything else is nothing to do."""
    res = resources(ctx)
    policy = WebhookPolicy.of(res.settings)
    did = uuid.UUID(delivery_id)
    async with transaction(res.sessions) as session:
        claimed = await WebhookService(session, policy).begin_attempt(did)
    if claimed is None:
        return "nothing to do"
    if isinstance(claimed, Held):
        await _wake(res, did, f"held:{claimed.until.timestamp()}", claimed.until)
        return "held: another attempt to the failing endpoint is in flight"
    result = await attempt(
        claimed.request, now=utcnow(), timeout_s=policy.timeout_s, allow_private=policy.allow_private
    )
    async with transaction(res.sessions) as session:
        next_at = await WebhookService(session, policy).finish_attempt(claimed, result)
    if next_at is not None:
        await _wake(res, did, claimed.number, next_at)
    return "delivered" if result.ok else f"attempt {claimed.number} failed: {result.error}"


async def reconcile_webhooks(ctx: dict[str, Any]) -> dict[str, int]:
    """Publish what is unpublished, and wake every delivery that is due. A wake-up for an attempt that is
    still queued has the same job id and is dropped by arq; a delivery in flight is not due (its claim)."""
    res = resources(ctx)
    published = await _publish(res)
    async with transaction(res.sessions, res.queue) as session:
        due = await WebhookService(session, WebhookPolicy.of(res.settings)).due_deliveries(
            now=utcnow(), limit=RECONCILE_BATCH
        )
        for delivery_id, attempts_made in due:
            enqueue_after_commit(
                session, DELIVER_WEBHOOK, str(delivery_id), job_id=deliver_job_id(delivery_id, attempts_made)
            )
    return {"events": published.events, "deliveries": published.deliveries, "due": len(due)}
