"""Microfactory sites and their printers. A site is also an account: its factory keys belong to it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from parts_catalog.models import Process
from parts_catalog.sqltypes import StrEnumType, UTCDateTime, utcnow
from services.accounts.models import NamedAccount
from services.factories.schemas import SiteStatus


class Site(NamedAccount, table=True):
    __tablename__ = "site"

    latitude: float = 0.0
    longitude: float = 0.0
    timezone: str = Field(default="UTC", max_length=64)
    # Weekday ("mon".."sun") -> [{"open": "08:00:00", "close": "17:00:00"}, ...], local time.
    opening_hours: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    # Weekday -> local pickup cut-off time ("16:00:00").
    courier_cutoffs: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    # Service level -> TransitLevel as JSON.
    transit: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    post_processing_minutes: int = 30
    # Where couriers pick parts up ({lines, city, postal_code, country}); empty: only coordinates known.
    address: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    courier: str = Field(default="local", max_length=40)  # services.factories.schemas.CourierName
    # Sites created before the registry knew where they are start offline: they cannot be routed to.
    status: SiteStatus = Field(default=SiteStatus.OFFLINE, sa_type=StrEnumType(SiteStatus), index=True)
    qualified_revisions: list[str] | None = Field(default=None, sa_type=sa.JSON)
    # Indexed: routing checks max(updated_at) to see whether its snapshot of the registry is current.
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class Printer(SQLModel, table=True):
    __tablename__ = "printer"
    __table_args__ = (sa.UniqueConstraint("site_id", "key", name="uq_printer_site_key"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    site_id: uuid.UUID = Field(foreign_key="site.id", index=True, ondelete="CASCADE")
    key: str = Field(max_length=40)
    model: str = Field(max_length=200)
    process: Process = Field(sa_type=StrEnumType(Process))
    build_x_mm: float
    build_y_mm: float
    build_z_mm: float
    nozzle_mm: float
    materials_supported: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    materials_loaded: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    profile: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)  # a PrintProfile
    slicer: str = Field(default="auto", max_length=32)
