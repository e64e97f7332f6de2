"""Routing's table: the printer slots it reserves for orders."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from parts_catalog.sqltypes import UTCDateTime, utcnow


class PrinterReservation(SQLModel, table=True):
    """A printer slot ``[start_at, end_at)`` held for an order; ``released_at`` set when it is given back.

    Written only by ``services.routing.placement`` while the printer's site row is locked
    (``RoutingRepository.lock_sites``), so that two active reservations of one printer never overlap.
    """

    __tablename__ = "printer_reservation"
    __table_args__ = (sa.Index("ix_printer_reservation_printer_end", "printer_id", "end_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    printer_id: uuid.UUID = Field(foreign_key="printer.id", ondelete="CASCADE")
    order_id: uuid.UUID = Field(foreign_key="orders.id", index=True)
    start_at: datetime = Field(sa_type=UTCDateTime)
    end_at: datetime = Field(sa_type=UTCDateTime)
    released_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
