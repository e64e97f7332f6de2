"""Inbound webhook tables: the partners' secrets, and every accepted event, kept for deduplication."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from parts_catalog.sqltypes import StrEnumType, UTCDateTime, utcnow


class PartnerSecret(SQLModel, table=True):
    """A secret a partner signs its webhooks with (Standard Webhooks ``whsec_``), or for Karrio the token it
    sends as is. Kept in clear: verifying an HMAC needs the key itself. Several may be valid at once while a
    partner rotates; ``expires_at`` ends the old one."""

    __tablename__ = "partner_secret"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id", index=True, ondelete="CASCADE")
    secret: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class InboundStatus(StrEnum):
    RECEIVED = "received"  # stored and acknowledged; not processed yet
    PROCESSED = "processed"
    IGNORED = "ignored"  # valid, but about nothing we ship (an unknown tracking number, another event type)
    PARKED = "parked"  # failed every attempt; waits for an operator (``last_error`` says why)


class InboundWebhook(SQLModel, table=True):
    """An accepted webhook, stored before it is acknowledged and processed after. The unique (source,
    event id) pair makes a replay a no-op; rows are kept at least ``webhook_dedup_hours``, parked ones until
    an operator retries them.

    ``tracking`` is the event as it was read and checked on receipt (``services.webhooks.inbound.stored``),
    which is what the worker applies; None for an event that is no tracking update (stored as ignored), and
    for events stored before migration 0008, whose ``payload`` is read instead."""

    __tablename__ = "inbound_webhook"
    __table_args__ = (sa.UniqueConstraint("source", "event_id", name="uq_inbound_webhook_event"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    source: str = Field(max_length=40)  # the partner's slug
    event_id: str = Field(max_length=200)
    event_type: str = Field(max_length=64)
    payload: dict[str, Any] = Field(sa_type=sa.JSON)
    tracking: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    status: InboundStatus = Field(
        default=InboundStatus.RECEIVED, sa_type=StrEnumType(InboundStatus), index=True
    )
    outcome: str | None = Field(default=None, max_length=200)
    attempts: int = 0  # started, counted before each: a worker killed while applying counts too
    last_error: str | None = Field(default=None, max_length=500)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
