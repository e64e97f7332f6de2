"""Order tables: the order and its events (the timeline's source)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from parts_catalog.models import Process
from parts_catalog.sqltypes import StrEnumType, UTCDateTime, utcnow
from services.orders.states import OrderStatus


class Order(SQLModel, table=True):
    __tablename__ = "orders"  # "order" is an SQL keyword

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    organization_id: uuid.UUID = Field(foreign_key="organization.id", index=True)
    part_id: uuid.UUID = Field(foreign_key="part.id")
    revision_id: uuid.UUID = Field(foreign_key="part_revision.id")
    process: Process = Field(sa_type=StrEnumType(Process))
    quantity: int
    materials: list[str] = Field(sa_type=sa.JSON)  # any of them is acceptable
    destination_lat: float
    destination_lon: float
    address: dict[str, Any] = Field(sa_type=sa.JSON)
    contact: dict[str, Any] = Field(sa_type=sa.JSON)
    sla: str | None = Field(default=None, max_length=8)  # "24h" | "48h"; None: an explicit need-by
    need_by: datetime = Field(sa_type=UTCDateTime)
    accept_late: bool = False
    status: OrderStatus = Field(sa_type=StrEnumType(OrderStatus), index=True)
    # The current assignment. A re-route replaces all of these and writes an event with the old ones.
    site_id: uuid.UUID | None = Field(default=None, foreign_key="site.id", index=True)
    # SET NULL: an operator may remove a printer once no unstarted order holds a slot on it.
    printer_id: uuid.UUID | None = Field(default=None, foreign_key="printer.id", ondelete="SET NULL")
    print_job_id: uuid.UUID | None = Field(default=None, foreign_key="print_job.id", index=True)
    service_level: str | None = Field(default=None, max_length=32)
    promised_delivery_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    eta: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    # The routing decision behind the promise: quote with breakdown, alternatives and why they lost.
    routing: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    reroutes: int = 0
    failure_code: str | None = Field(default=None, max_length=64)
    # Set while an operator must act (the courier refused the booking, a delivery failed); the reason code.
    needs_attention: str | None = Field(default=None, max_length=64, index=True)
    created_by: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class OrderEvent(SQLModel, table=True):
    """Something that happened to an order; a status change records both ends."""

    __tablename__ = "order_event"

    id: int | None = Field(default=None, primary_key=True)
    order_id: uuid.UUID = Field(foreign_key="orders.id", index=True, ondelete="CASCADE")
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    kind: str = Field(max_length=32)  # a status, or "promise_changed" and the like
    from_status: OrderStatus | None = Field(default=None, sa_type=StrEnumType(OrderStatus))
    to_status: OrderStatus | None = Field(default=None, sa_type=StrEnumType(OrderStatus))
    reason: str | None = Field(default=None, max_length=64)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    # When the outbound-webhook publisher fanned the event out (services.webhooks.outbound); None: not yet.
    published_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    # Why the publisher could not render it into a webhook; such an event is stamped published, never sent.
    publish_error: str | None = Field(default=None, max_length=500)
