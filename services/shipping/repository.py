"""Shipment queries. Nothing here commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.orders.models import Order
from services.orders.states import OrderStatus
from services.shipping.models import Shipment, ShipmentEvent, ShipmentStatus


class ShipmentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def shipment(self, shipment_id: uuid.UUID, *, for_update: bool = False) -> Shipment | None:
        query = select(Shipment).where(Shipment.id == shipment_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def current(self, order_id: uuid.UUID, *, for_update: bool = False) -> Shipment | None:
        """The order's shipment; a cancelled one gives way to the next."""
        query = (
            select(Shipment)
            .where(Shipment.order_id == order_id, Shipment.status != ShipmentStatus.CANCELLED)
            .order_by(col(Shipment.created_at).desc())
        )
        if for_update:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def by_tracking(self, courier: str, tracking_number: str) -> Shipment | None:
        query = select(Shipment).where(
            Shipment.courier == courier, Shipment.tracking_number == tracking_number
        )
        return (await self.session.exec(query)).first()

    async def events(self, shipment_id: uuid.UUID) -> Sequence[ShipmentEvent]:
        query = (
            select(ShipmentEvent)
            .where(ShipmentEvent.shipment_id == shipment_id)
            .order_by(col(ShipmentEvent.occurred_at), col(ShipmentEvent.id))
        )
        return (await self.session.exec(query)).all()

    async def unbooked_orders(self, *, changed_before: datetime, limit: int) -> Sequence[uuid.UUID]:
        """Printed orders whose booking is pending or was never started (a lost wake-up, a killed worker)."""
        booking = select(Shipment.order_id).where(
            Shipment.status == ShipmentStatus.BOOKING, col(Shipment.updated_at) < changed_before
        )
        with_shipment = select(Shipment.order_id).where(Shipment.status != ShipmentStatus.CANCELLED)
        never = select(Order.id).where(
            Order.status == OrderStatus.PRINTED,
            col(Order.updated_at) < changed_before,
            col(Order.id).not_in(with_shipment),
        )
        found = list((await self.session.exec(booking.limit(limit))).all())
        found += (await self.session.exec(never.limit(limit))).all()
        return found
