"""The built-in courier's own table: what the courier knows of each parcel it carries.

Written only by ``services.couriers.providers.local.gateway``, in transactions of its own: what the courier
knows is not what Spareflow knows until a webhook says so. Others read it (the table's metadata for
migrations, a gauge of parked parcels).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from parts_catalog.sqltypes import UTCDateTime


class LocalParcel(SQLModel, table=True):
    __tablename__ = "local_courier_parcel"

    tracking_number: str = Field(primary_key=True, max_length=32)
    idempotency_key: str = Field(max_length=80, unique=True)
    reference: str = Field(max_length=100)
    service: str = Field(max_length=32)
    origin: dict[str, Any] = Field(sa_type=sa.JSON)
    destination: dict[str, Any] = Field(sa_type=sa.JSON)
    parcel: dict[str, Any] = Field(sa_type=sa.JSON)
    booked_at: datetime = Field(sa_type=UTCDateTime)
    pickup_from: datetime = Field(sa_type=UTCDateTime)
    pickup_until: datetime = Field(sa_type=UTCDateTime)
    estimated_delivery_at: datetime = Field(sa_type=UTCDateTime)
    # The parcel's planned (and, once cancelled, actual) events: {status, at, description, location}.
    plan: list[dict[str, Any]] = Field(sa_type=sa.JSON)
    reported: int = 0  # how many of ``plan`` our receiver has acknowledged
    # When the next unreported event comes due (or may be resent); None once all are reported, or parked.
    next_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Sends of the next unreported event that were not acknowledged; back to 0 once one is.
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    # Set when resending stopped (refused for good, or ``max_attempts`` used up) until an operator resumes it.
    parked_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
