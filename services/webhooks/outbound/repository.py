"""Outbound webhook queries. Nothing here commits.

Locks: an endpoint before its deliveries, everywhere (disabling an endpoint abandons its deliveries while an
attempt's outcome is recorded on one of them). SQLite has no row locks and ignores FOR UPDATE; there a write
that changes nothing takes the database's single write lock before the reads
(``services.db.serialize_writes``).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.orders.models import Order, OrderEvent
from services.webhooks.outbound.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint


class WebhookRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- endpoints -------------------------------------------------------------------------------------

    async def endpoint(
        self, endpoint_id: uuid.UUID, *, visible_to: uuid.UUID | None = None, for_update: bool = False
    ) -> WebhookEndpoint | None:
        query = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
        if visible_to is not None:
            query = query.where(WebhookEndpoint.organization_id == visible_to)
        if for_update:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def endpoints(self, *, visible_to: uuid.UUID | None) -> Sequence[WebhookEndpoint]:
        query = select(WebhookEndpoint).order_by(col(WebhookEndpoint.created_at), col(WebhookEndpoint.id))
        if visible_to is not None:
            query = query.where(WebhookEndpoint.organization_id == visible_to)
        return (await self.session.exec(query)).all()

    async def count_endpoints(self, organization_id: uuid.UUID) -> int:
        query = select(sa.func.count()).select_from(WebhookEndpoint)
        query = query.where(WebhookEndpoint.organization_id == organization_id)
        return int((await self.session.exec(query)).one())

    async def enabled_endpoints_of(
        self, organization_ids: Collection[uuid.UUID]
    ) -> Sequence[WebhookEndpoint]:
        if not organization_ids:
            return []
        query = (
            select(WebhookEndpoint)
            .where(
                col(WebhookEndpoint.organization_id).in_(list(organization_ids)),
                col(WebhookEndpoint.enabled).is_(True),
            )
            .order_by(col(WebhookEndpoint.id))
        )
        return (await self.session.exec(query)).all()

    async def delete_endpoint(self, endpoint: WebhookEndpoint) -> None:
        # The deliveries go too (their log is the endpoint's); explicit, whatever the database's FK mode.
        await self.session.exec(
            sa.delete(WebhookDelivery).where(col(WebhookDelivery.endpoint_id) == endpoint.id)
        )
        await self.session.delete(endpoint)

    # --- events ----------------------------------------------------------------------------------------

    async def unpublished_events(self, *, limit: int) -> Sequence[tuple[OrderEvent, Order]]:
        """The oldest events not yet fanned out, with their orders. On PostgreSQL the events are locked,
        skipping those another publisher holds: concurrent publishers take disjoint batches."""
        query = (
            select(OrderEvent, Order)
            .join(Order, col(Order.id) == col(OrderEvent.order_id))
            .where(col(OrderEvent.published_at).is_(None))
            .order_by(col(OrderEvent.id))
            .limit(limit)
            .with_for_update(of=OrderEvent, skip_locked=True)
        )
        return [(event, order) for event, order in (await self.session.exec(query)).all()]

    async def mark_published(self, event_ids: Collection[int], *, at: datetime) -> None:
        if event_ids:
            await self.session.exec(
                sa.update(OrderEvent).where(col(OrderEvent.id).in_(list(event_ids))).values(published_at=at)
            )

    async def mark_unpublishable(self, event_id: int, *, error: str) -> None:
        await self.session.exec(
            sa.update(OrderEvent).where(col(OrderEvent.id) == event_id).values(publish_error=error[:500])
        )

    # --- deliveries ------------------------------------------------------------------------------------

    async def delivery(self, delivery_id: uuid.UUID, *, for_update: bool = False) -> WebhookDelivery | None:
        query = select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def attempts_in_flight(
        self, endpoint_id: uuid.UUID, *, started_after: datetime, excluding: uuid.UUID
    ) -> int:
        """Attempts to the endpoint that began after ``started_after`` and have no outcome recorded yet (one
        entry in a delivery's ``attempt_log`` per recorded attempt)."""
        query = select(WebhookDelivery).where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.status == DeliveryStatus.PENDING,
            col(WebhookDelivery.last_attempt_at) > started_after,
            WebhookDelivery.id != excluding,
        )
        found = (await self.session.exec(query)).all()
        return sum(1 for d in found if len(d.attempt_log) < d.attempts)

    async def endpoint_of_delivery(self, delivery_id: uuid.UUID) -> uuid.UUID | None:
        query = select(WebhookDelivery.endpoint_id).where(WebhookDelivery.id == delivery_id)
        return (await self.session.exec(query)).first()

    async def abandon_pending(self, endpoint_id: uuid.UUID, *, reason: str) -> int:
        result = await self.session.exec(
            sa.update(WebhookDelivery)
            .where(
                col(WebhookDelivery.endpoint_id) == endpoint_id,
                col(WebhookDelivery.status) == DeliveryStatus.PENDING,
            )
            .values(status=DeliveryStatus.ABANDONED, next_attempt_at=None, last_error=reason)
        )
        return int(result.rowcount)

    async def due_deliveries(self, *, now: datetime, limit: int) -> Sequence[tuple[uuid.UUID, int]]:
        """(id, attempts made) of pending deliveries whose next attempt is due, the longest overdue first."""
        query = (
            select(WebhookDelivery.id, WebhookDelivery.attempts)
            .where(
                col(WebhookDelivery.status) == DeliveryStatus.PENDING,
                col(WebhookDelivery.next_attempt_at) <= now,
            )
            .order_by(col(WebhookDelivery.next_attempt_at))
            .limit(limit)
        )
        return [(delivery_id, attempts) for delivery_id, attempts in (await self.session.exec(query)).all()]

    async def deliveries_page(
        self, endpoint_id: uuid.UUID, *, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> Sequence[WebhookDelivery]:
        """Newest first, keyset-paginated on (created_at, id)."""
        query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
        if before is not None:
            created, delivery_id = before
            query = query.where(
                (col(WebhookDelivery.created_at) < created)
                | ((col(WebhookDelivery.created_at) == created) & (col(WebhookDelivery.id) < delivery_id))
            )
        query = query.order_by(col(WebhookDelivery.created_at).desc(), col(WebhookDelivery.id).desc())
        return (await self.session.exec(query.limit(limit))).all()
