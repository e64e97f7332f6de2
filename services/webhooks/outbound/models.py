"""Outbound webhook tables: the endpoints organizations register, and one delivery per event and endpoint."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from parts_catalog.sqltypes import StrEnumType, UTCDateTime, utcnow


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (or in flight)
    DELIVERED = "delivered"  # an attempt got a 2xx
    FAILED = "failed"  # every attempt of the retry schedule failed
    ABANDONED = "abandoned"  # its endpoint was disabled or deleted before it got through


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoint"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    organization_id: uuid.UUID = Field(foreign_key="organization.id", index=True)
    url: str = Field(max_length=2000)
    # Kept in clear: HMAC signing needs the key itself (unlike API keys, which are only compared, hence
    # hashed). Anyone who can read this table can forge this endpoint's webhooks; protect backups likewise.
    secret: str = Field(max_length=100)
    # After a rotation the old secret signs alongside the new one until it expires, so receivers can switch.
    previous_secret: str | None = Field(default=None, max_length=100)
    previous_secret_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    description: str = Field(default="", max_length=500)
    # Event types the endpoint subscribes to (``order.shipped``, ...); empty: all of them.
    event_types: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    enabled: bool = True
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disabled_reason: str | None = Field(default=None, max_length=200)
    consecutive_failures: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    def subscribes_to(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types

    def signing_secrets(self, now: datetime) -> list[str]:
        secrets = [self.secret]
        expires = self.previous_secret_expires_at
        if self.previous_secret and expires is not None and expires > now:
            secrets.append(self.previous_secret)
        return secrets


class WebhookDelivery(SQLModel, table=True):
    """One event for one endpoint, with its attempts. Unique per (endpoint, event): fan-out is idempotent."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        sa.UniqueConstraint("endpoint_id", "order_event_id", name="uq_webhook_delivery_endpoint_event"),
        # The delivery log: an endpoint's deliveries, newest first.
        sa.Index("ix_webhook_delivery_endpoint_created", "endpoint_id", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    endpoint_id: uuid.UUID = Field(foreign_key="webhook_endpoint.id", ondelete="CASCADE")
    order_event_id: int = Field(foreign_key="order_event.id", index=True, ondelete="CASCADE")
    order_id: uuid.UUID
    event_type: str = Field(max_length=40)
    msg_id: str = Field(max_length=64)  # the webhook-id header: stable across attempts
    payload: dict[str, Any] = Field(sa_type=sa.JSON)
    status: DeliveryStatus = Field(sa_type=StrEnumType(DeliveryStatus), default=DeliveryStatus.PENDING)
    attempts: int = 0
    # Pending: when the next attempt is due; while an attempt is in flight, when its claim lapses (a worker
    # killed mid-attempt leaves the delivery due again then, never lost). None once finished.
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    last_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=300)
    # One entry per attempt: {"n", "at", "status_code", "error", "duration_ms"} (bounded by the schedule).
    attempt_log: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
