"""Shipment tables: one parcel from a microfactory to an order's destination, and what its courier said."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from parts_catalog.sqltypes import StrEnumType, UTCDateTime, utcnow
from services.couriers.ports import TrackingStatus


class ShipmentStatus(StrEnum):
    """The booking's life; where the parcel is, is ``tracking_status``."""

    BOOKING = "booking"  # the booking job has not had the courier's confirmation yet
    BOOKED = "booked"  # tracking number and label stored
    NEEDS_ATTENTION = "needs_attention"  # the courier refused the booking; an operator decides
    CANCELLED = "cancelled"


class Shipment(SQLModel, table=True):
    __tablename__ = "shipment"
    __table_args__ = (sa.UniqueConstraint("courier", "tracking_number", name="uq_shipment_tracking"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    order_id: uuid.UUID = Field(foreign_key="orders.id", index=True)
    site_id: uuid.UUID = Field(foreign_key="site.id")
    courier: str = Field(max_length=40)
    status: ShipmentStatus = Field(sa_type=StrEnumType(ShipmentStatus), index=True)
    tracking_status: TrackingStatus = Field(
        default=TrackingStatus.PENDING, sa_type=StrEnumType(TrackingStatus)
    )
    # Ours, sent with every booking attempt: the courier books a shipment once per key.
    idempotency_key: str = Field(max_length=80, unique=True)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    attention_reason: str | None = Field(default=None, max_length=64)
    parcel: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    service: str | None = Field(default=None, max_length=64)
    tracking_number: str | None = Field(default=None, max_length=100)
    courier_shipment_id: str | None = Field(default=None, max_length=100)
    label_pdf: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    pickup_from: datetime | None = Field(default=None, sa_type=UTCDateTime)
    pickup_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    estimated_delivery_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    booked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    picked_up_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ShipmentEvent(SQLModel, table=True):
    """A tracking event as the courier reported it. Couriers resend their whole history with every update:
    one row per (status, time) keeps each event once."""

    __tablename__ = "shipment_event"
    __table_args__ = (sa.UniqueConstraint("shipment_id", "status", "occurred_at", name="uq_shipment_event"),)

    id: int | None = Field(default=None, primary_key=True)
    shipment_id: uuid.UUID = Field(foreign_key="shipment.id", index=True, ondelete="CASCADE")
    status: TrackingStatus = Field(sa_type=StrEnumType(TrackingStatus))
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    description: str = Field(default="", max_length=500)
    location: str = Field(default="", max_length=200)
    courier_code: str = Field(default="", max_length=64)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
