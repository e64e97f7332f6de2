"""Units of work for the processes that move an order across owners, and the one order of their locks.

Lock order. A transaction that takes more than one of these takes them in this order, so that two
transactions never wait for each other in a cycle:

1. SQLite's write lock (``services.db.serialize_writes``), before any read the transaction relies on; on
   SQLite it is the only lock there is, and the rest of this list is PostgreSQL's;
2. the order (``OrderRepository.order`` or ``order_of_job``, FOR UPDATE);
3. its print job (``PrintingRepository.job``, FOR UPDATE);
4. sites, in id order (``RoutingRepository.lock_sites``), which placement takes for its candidates and for
   a moved order's current site;
5. its shipment.

``lock_job`` takes 1 to 3 for a change to a print job; ``job_step`` wraps such a change in a transaction and
has the order follow its job at the end (``services.fulfilment.follow``). Placement takes 1 and 4 itself;
a move (re-route, re-optimiser) locks the order, then its job (``OrderService.lock_job``), before it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from arq.connections import ArqRedis
from sqlmodel.ext.asyncio.session import AsyncSession

from parts_catalog.formats import ArchiveLimits
from parts_catalog.service import CatalogService
from parts_catalog.storage import BlobStore
from services.db import SessionFactory, serialize_writes, transaction
from services.factories.service import SiteRegistry
from services.fulfilment.follow import follow
from services.orders.service import OrderService
from services.printing.models import PrintJob
from services.printing.service import PrintingService
from services.routing.placement import Placement
from services.routing.repository import RoutingRepository
from services.routing.snapshot import SnapshotCache


def site_registry(session: AsyncSession) -> SiteRegistry:
    """The site registry, told by routing which printers hold reserved slots (those cannot be removed)."""
    return SiteRegistry(session, reserved_printers=RoutingRepository(session).printers_with_reservations)


def order_service(
    session: AsyncSession, blobs: BlobStore, *, archive_limits: ArchiveLimits, snapshots: SnapshotCache
) -> OrderService:
    """The order service and the owners it calls (catalog, printing, placement) on one session."""
    catalog = CatalogService(session, blobs, archive_limits=archive_limits)
    return OrderService(session, catalog, PrintingService(session, catalog), Placement(session, snapshots))


@asynccontextmanager
async def order_transaction(
    sessions: SessionFactory,
    queue: ArqRedis | None,
    blobs: BlobStore,
    *,
    archive_limits: ArchiveLimits,
    snapshots: SnapshotCache,
) -> AsyncIterator[OrderService]:
    """An OrderService in a transaction of its own (workers, the CLI); jobs it creates are enqueued after
    the commit (or, without a queue, found by the reconciler)."""
    async with transaction(sessions, queue) as session:
        yield order_service(session, blobs, archive_limits=archive_limits, snapshots=snapshots)


async def lock_job(orders: OrderService, job_id: uuid.UUID, *, with_order: bool = True) -> PrintJob | None:
    """Locks 1 to 3 for a change to a print job: the write lock, then its order (unless the change leaves
    the order alone), then the job itself."""
    await serialize_writes(orders.session)
    if with_order:
        await orders.repo.order_of_job(job_id)
    return await orders.printing.repo.job(job_id, for_update=True)


@asynccontextmanager
async def job_step(
    sessions: SessionFactory,
    queue: ArqRedis | None,
    blobs: BlobStore,
    job_id: uuid.UUID,
    *,
    archive_limits: ArchiveLimits,
    snapshots: SnapshotCache,
) -> AsyncIterator[PrintingService]:
    """One transaction that changes a print job (a worker's preparation step), with the locks taken in
    order first and the order following its job at the end (preparing, ready; a failed job re-routes or
    fails the order)."""
    async with order_transaction(
        sessions, queue, blobs, archive_limits=archive_limits, snapshots=snapshots
    ) as orders:
        await lock_job(orders, job_id)
        yield orders.printing
        job = await orders.printing.repo.job(job_id)
        if job is not None:
            await follow(orders, job)
