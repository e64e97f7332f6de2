"""One row per idempotency key: who sent it, for what request, and the answer once there is one."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from parts_catalog.sqltypes import UTCDateTime, utcnow


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_key"
    __table_args__ = (sa.UniqueConstraint("owner", "key", name="uq_idempotency_owner_key"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # Keys are unique per account (an organization, or an operator's key), as at Stripe.
    owner: str = Field(max_length=64)
    key: str = Field(max_length=255)
    # sha256 of method, path and the canonical JSON body: the same key with another request is refused.
    fingerprint: str = Field(max_length=64)
    # None while the first request is in flight.
    response_status: int | None = None
    response_body: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    locked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
