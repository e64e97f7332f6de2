"""Print job queries of the factory API: what a site may claim, leases, and when sites were last seen.
Nothing here commits."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.factories.models import Printer, Site
from services.factories.schemas import SiteStatus
from services.orders.models import Order
from services.printing.models import LEASED, PrintJob, PrintJobLease, PrintJobStatus, SitePresence


class FactoryJobRepository:
    """Print job queries of the factory API: what a site may claim, leases, and when sites were last seen."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claimable(
        self,
        *,
        site_id: uuid.UUID,
        printer_id: uuid.UUID | None,
        materials: Collection[str] | None,
        now: datetime,
        limit: int,
    ) -> Sequence[tuple[uuid.UUID, uuid.UUID]]:
        """(order id, job id) of the site's jobs an agent may claim now: ready, or leased with the lease run
        out; the order needed first comes first.

        On PostgreSQL the orders are locked, skipping those another transaction holds: concurrent pollers
        each take a different job instead of queueing on one. The order is locked before its job, as
        everywhere.
        """
        query = (
            select(Order.id, PrintJob.id)
            .join(Order, col(Order.print_job_id) == col(PrintJob.id))
            .where(
                PrintJob.site_id == site_id,
                sa.or_(col(PrintJob.status) == PrintJobStatus.READY, _lapsed(now)),
            )
            .order_by(col(Order.need_by), col(PrintJob.created_at))
            .limit(limit)
            .with_for_update(of=Order, skip_locked=True)
        )
        if printer_id is not None:
            query = query.where(PrintJob.printer_id == printer_id)
        if materials:
            query = query.where(sa.func.lower(PrintJob.material).in_([m.casefold() for m in materials]))
        return list((await self.session.exec(query)).all())

    async def site_has_printer(self, site_id: uuid.UUID, printer_id: uuid.UUID) -> bool:
        query = select(Printer.id).where(Printer.id == printer_id, Printer.site_id == site_id)
        return (await self.session.exec(query)).first() is not None

    async def lapsed_leases(self, *, now: datetime, limit: int) -> Sequence[uuid.UUID]:
        query = select(PrintJob.id).where(_lapsed(now)).order_by(col(PrintJob.lease_expires_at)).limit(limit)
        return (await self.session.exec(query)).all()

    async def site_jobs(self, site_id: uuid.UUID, statuses: Collection[PrintJobStatus]) -> Sequence[PrintJob]:
        query = (
            select(PrintJob)
            .where(PrintJob.site_id == site_id, col(PrintJob.status).in_([s.value for s in statuses]))
            .order_by(col(PrintJob.created_at))
        )
        return (await self.session.exec(query)).all()

    async def lease(self, job_id: uuid.UUID, fence: int) -> PrintJobLease | None:
        query = select(PrintJobLease).where(PrintJobLease.job_id == job_id, PrintJobLease.fence == fence)
        return (await self.session.exec(query)).first()

    async def leases_of(self, job_id: uuid.UUID) -> Sequence[PrintJobLease]:
        query = select(PrintJobLease).where(PrintJobLease.job_id == job_id).order_by(col(PrintJobLease.fence))
        return (await self.session.exec(query)).all()

    async def presence(self, site_id: uuid.UUID) -> SitePresence | None:
        return await self.session.get(SitePresence, site_id)

    async def silent_sites(self, *, seen_before: datetime) -> Sequence[uuid.UUID]:
        """Sites taking work whose agents called before and have been silent since ``seen_before``."""
        query = (
            select(Site.id)
            .join(SitePresence, col(SitePresence.site_id) == col(Site.id))
            .where(
                col(Site.status).in_([SiteStatus.ONLINE.value, SiteStatus.PAUSED.value]),
                col(SitePresence.last_seen_at) < seen_before,
            )
        )
        return (await self.session.exec(query)).all()


def _lapsed(now: datetime) -> sa.ColumnElement[bool]:
    """Jobs leased under a lease that has run out by ``now``."""
    return sa.and_(col(PrintJob.status).in_([s.value for s in LEASED]), col(PrintJob.lease_expires_at) <= now)
