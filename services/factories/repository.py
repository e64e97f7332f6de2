"""Site and printer queries. Nothing here commits."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.factories.models import Printer, Site


class SiteRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def site(self, site_id: uuid.UUID) -> Site | None:
        return await self.session.get(Site, site_id)

    async def site_by_slug(self, slug: str) -> Site | None:
        return (await self.session.exec(select(Site).where(Site.slug == slug))).first()

    async def sites(self, site_ids: Collection[uuid.UUID] | None = None) -> Sequence[Site]:
        """The given sites, or all, by slug."""
        query = select(Site).order_by(col(Site.slug))
        if site_ids is not None:
            query = query.where(col(Site.id).in_(list(site_ids)))
        return (await self.session.exec(query)).all()

    async def printers_of(self, site_ids: Iterable[uuid.UUID] | None) -> dict[uuid.UUID, list[Printer]]:
        """Printers by site, by key: of the given sites, or of all (None)."""
        query = select(Printer).order_by(col(Printer.key))
        if site_ids is not None:
            query = query.where(col(Printer.site_id).in_(list(site_ids)))
        found: dict[uuid.UUID, list[Printer]] = defaultdict(list)
        for printer in (await self.session.exec(query)).all():
            found[printer.site_id].append(printer)
        return found

    async def remove_printers(self, site_id: uuid.UUID, keep_keys: Iterable[str]) -> None:
        keep = list(keep_keys)
        statement = sa.delete(Printer).where(col(Printer.site_id) == site_id)
        if keep:
            statement = statement.where(col(Printer.key).not_in(keep))
        await self.session.exec(statement)
