"""Order queries. Nothing here commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.factories.models import Site
from services.factories.schemas import SiteStatus
from services.orders.models import Order, OrderEvent
from services.orders.states import UNSTARTED, OrderStatus

# The event a failed re-route of an order that must move leaves, and the needs-attention reason it is flagged
# with once re-routing it has failed ``max_job_attempts`` times (``services.orders.reroute_failures``).
REROUTE_FAILED = "reroute_failed"


def _unstarted(site_id: uuid.UUID | None) -> list[ColumnElement[bool]]:
    """Orders holding a printer slot that has not started (of one site)."""
    conditions: list[ColumnElement[bool]] = [col(Order.status).in_([s.value for s in UNSTARTED])]
    if site_id is not None:
        conditions.append(col(Order.site_id) == site_id)
    return conditions


class OrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def order(
        self, order_id: uuid.UUID, *, visible_to: uuid.UUID | None = None, for_update: bool = False
    ) -> Order | None:
        query = select(Order).where(Order.id == order_id)
        if visible_to is not None:
            query = query.where(Order.organization_id == visible_to)
        if for_update:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def order_of_job(self, job_id: uuid.UUID, *, for_update: bool = True) -> Order | None:
        query = select(Order).where(Order.print_job_id == job_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def page(
        self,
        *,
        visible_to: uuid.UUID | None,
        status: OrderStatus | None,
        before: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> Sequence[Order]:
        """Newest first, keyset-paginated on (created_at, id)."""
        query = select(Order)
        if visible_to is not None:
            query = query.where(Order.organization_id == visible_to)
        if status is not None:
            query = query.where(Order.status == status)
        if before is not None:
            created, order_id = before
            query = query.where(
                (col(Order.created_at) < created)
                | ((col(Order.created_at) == created) & (col(Order.id) < order_id))
            )
        query = query.order_by(col(Order.created_at).desc(), col(Order.id).desc()).limit(limit)
        return (await self.session.exec(query)).all()

    async def events(self, order_id: uuid.UUID) -> Sequence[OrderEvent]:
        query = select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(col(OrderEvent.id))
        return (await self.session.exec(query)).all()

    async def unstarted(self, *, limit: int, site_id: uuid.UUID | None = None) -> Sequence[uuid.UUID]:
        query = select(Order.id).where(*_unstarted(site_id)).order_by(col(Order.need_by))
        return (await self.session.exec(query.limit(limit))).all()

    async def unstarted_orders(self, *, limit: int) -> Sequence[Order]:
        query = select(Order).where(*_unstarted(None)).order_by(col(Order.need_by))
        return (await self.session.exec(query.limit(limit))).all()

    async def stranded(self, site_id: uuid.UUID, *, limit: int) -> Sequence[uuid.UUID]:
        """A site's unstarted orders to move elsewhere, but those waiting for an operator (flagged)."""
        query = (
            select(Order.id)
            .where(*_unstarted(site_id), col(Order.needs_attention).is_(None))
            .order_by(col(Order.need_by))
        )
        return (await self.session.exec(query.limit(limit))).all()

    async def sites_with_stranded_orders(self) -> Sequence[uuid.UUID]:
        """Offline sites that still hold unstarted orders not waiting for an operator: their re-route was
        lost or is pending."""
        query = (
            select(Order.site_id)
            .join(Site, col(Site.id) == col(Order.site_id))
            .where(Site.status == SiteStatus.OFFLINE, *_unstarted(None), col(Order.needs_attention).is_(None))
            .distinct()
        )
        return [site_id for site_id in (await self.session.exec(query)).all() if site_id is not None]

    async def reroute_failures(self, order_id: uuid.UUID) -> int:
        """Failed re-routes of the order since it was last routed (a successful move starts the count
        afresh)."""
        routed = (
            select(sa.func.max(OrderEvent.id))
            .where(OrderEvent.order_id == order_id, col(OrderEvent.kind).in_(["routed", "rerouted"]))
            .scalar_subquery()
        )
        query = select(sa.func.count()).where(
            OrderEvent.order_id == order_id,
            OrderEvent.kind == REROUTE_FAILED,
            col(OrderEvent.id) > sa.func.coalesce(routed, 0),
        )
        return (await self.session.exec(query)).one()
