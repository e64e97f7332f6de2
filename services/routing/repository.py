"""What routing reads (sites, printers, reserved slots), the slots it reserves, and the locks that keep
reservations disjoint.

Nothing here commits.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.db import is_sqlite
from services.factories.models import Printer, Site
from services.routing.calendars import Interval
from services.routing.models import PrinterReservation

Reservations = dict[uuid.UUID, list[Interval]]


class RoutingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def registry_version(self) -> tuple[int, datetime | None]:
        """Changes whenever a site or one of its printers is created or edited (both bump the site)."""
        row = (await self.session.exec(select(sa.func.count(), sa.func.max(Site.updated_at)))).one()
        count, latest = row
        return int(count), latest

    async def reservations(
        self, *, ending_after: datetime, site_ids: Iterable[uuid.UUID] | None = None
    ) -> Reservations:
        """Active reservations that end after ``ending_after``, per printer, sorted by start."""
        query = (
            select(PrinterReservation.printer_id, PrinterReservation.start_at, PrinterReservation.end_at)
            .where(
                col(PrinterReservation.released_at).is_(None), col(PrinterReservation.end_at) > ending_after
            )
            .order_by(col(PrinterReservation.printer_id), col(PrinterReservation.start_at))
        )
        if site_ids is not None:
            query = query.join(Printer, col(Printer.id) == col(PrinterReservation.printer_id)).where(
                col(Printer.site_id).in_(list(site_ids))
            )
        found: Reservations = defaultdict(list)
        for printer_id, start, end in (await self.session.exec(query)).all():
            found[printer_id].append((start, end))
        return found

    async def lock_sites(self, site_ids: Collection[uuid.UUID]) -> None:
        """Serialize reservation writes on these sites until the transaction (or savepoint) ends.

        PostgreSQL: row locks on the sites, taken in id order so that two lockers never deadlock. SQLite:
        ``services.db.serialize_writes`` already holds the whole database.
        """
        if site_ids and not is_sqlite(self.session):
            query = select(Site.id).where(col(Site.id).in_(list(site_ids))).order_by(col(Site.id))
            await self.session.exec(query.with_for_update())

    async def add_reservation(self, reservation: PrinterReservation) -> None:
        self.session.add(reservation)
        await self.session.flush()

    async def release_reservations(self, order_id: uuid.UUID, *, at: datetime) -> None:
        await self.session.exec(
            sa.update(PrinterReservation)
            .where(
                col(PrinterReservation.order_id) == order_id, col(PrinterReservation.released_at).is_(None)
            )
            .values(released_at=at)
        )

    async def active_reservation(self, order_id: uuid.UUID) -> PrinterReservation | None:
        query = select(PrinterReservation).where(
            PrinterReservation.order_id == order_id, col(PrinterReservation.released_at).is_(None)
        )
        return (await self.session.exec(query)).first()

    async def printers_with_reservations(self, site_id: uuid.UUID, keep_keys: Iterable[str]) -> list[str]:
        """Keys of the site's printers, other than ``keep_keys``, that hold an active reservation."""
        query = (
            select(Printer.key)
            .join(PrinterReservation, col(PrinterReservation.printer_id) == col(Printer.id))
            .where(
                col(Printer.site_id) == site_id,
                col(Printer.key).not_in(list(keep_keys)),
                col(PrinterReservation.released_at).is_(None),
            )
            .distinct()
        )
        return sorted((await self.session.exec(query)).all())
