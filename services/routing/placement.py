"""Placement: a demand in, a reserved printer slot out, in the caller's transaction.

1. route on the process's snapshot of the registry (``services.routing.snapshot``): a first guess;
2. lock the chosen site and its runners-up (``RoutingRepository.lock_sites``), reload them from fresh rows
   and route again among them: the quote that is reserved was computed under the lock, so two demands
   never hold overlapping slots on one printer and every promise was true when it was made;
3. if the fresh quote no longer meets what the snapshot promised (another demand took the slot), roll the
   attempt back to its savepoint, which releases its locks, and try again on a fresh snapshot; the last
   attempt locks every online site, so contention delays a placement but never fails it;
4. reserve ``[start, print_end)`` on the quote's printer for its owner (an order).

A demand nothing can meet raises before anything is written (``SlaUnachievable`` with the earliest delivery
and where, or ``NoCapableSite`` with the reasons). Routing owns the reservations: it alone writes them, and
it never needs to know what an owner is beyond its id.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from services.db import serialize_writes
from services.errors import DomainError, InvalidRequest
from services.factories.schemas import SiteStatus
from services.observability.metrics import ROUTING_SECONDS
from services.routing.demand import Demand
from services.routing.models import PrinterReservation
from services.routing.quotes import Quote, RoutingDecision
from services.routing.repository import RoutingRepository
from services.routing.schemas import EarliestOut
from services.routing.search import route
from services.routing.snapshot import PrinterInfo, Snapshot, SnapshotCache, load_sites

log = logging.getLogger(__name__)

ATTEMPTS = 4
MAX_ALTERNATIVES = 3


class SlaUnachievable(InvalidRequest):
    code = "sla_unachievable"


class NoCapableSite(InvalidRequest):
    code = "no_capable_site"


class PrintMinutes(Protocol):
    """Minutes for one copy per printer profile (``PrinterInfo.profile_key``) of the demand's part."""

    async def __call__(self, printers: Iterable[PrinterInfo]) -> Mapping[str, float]: ...


@dataclass(frozen=True, slots=True)
class Reserved:
    """A quote whose printer slot is held for its owner, with the decision it came from."""

    decision: RoutingDecision
    quote: Quote
    printers: Mapping[str, PrinterInfo]

    @property
    def printer(self) -> PrinterInfo:
        return self.printers[self.quote.printer_id]


class _Contended(Exception):
    """The locked, fresh quote lost what the snapshot promised: try again."""


class Placement:
    def __init__(self, session: AsyncSession, snapshots: SnapshotCache) -> None:
        self.session = session
        self.snapshots = snapshots
        self.repo = RoutingRepository(session)

    async def snapshot(self, *, now: datetime, fresh: bool = False) -> Snapshot:
        return await self.snapshots.get(self.repo, now=now, fresh=fresh)

    async def reserve(
        self,
        demand: Demand,
        minutes: PrintMinutes,
        *,
        owner_id: uuid.UUID,
        accept_late: bool,
        exclude: frozenset[str] = frozenset(),
        current_site: uuid.UUID | None = None,
    ) -> Reserved:
        """Choose, lock and reserve a slot for ``owner_id`` (module docstring), timed in
        ``spareflow_routing_seconds`` by outcome: routed or the refusal's code.

        ``minutes`` is asked for the profiles of printers the demand has no minutes for (a fresh load).
        ``current_site``: the site a moved owner holds now; it is locked with the candidates (see
        ``_route_locked``).
        """
        started, outcome = time.perf_counter(), "error"
        try:
            reserved = await self._choose(
                demand, minutes, accept_late=accept_late, exclude=exclude, current_site=current_site
            )
            info = reserved.printer
            self.session.add(
                PrinterReservation(
                    printer_id=info.printer_id,
                    order_id=owner_id,
                    start_at=reserved.quote.start,
                    end_at=reserved.quote.print_end,
                )
            )
            outcome = "routed"
            return reserved
        except DomainError as exc:
            outcome = exc.code
            raise
        finally:
            ROUTING_SECONDS.labels(outcome).observe(time.perf_counter() - started)

    async def release(self, owner_id: uuid.UUID, *, at: datetime) -> None:
        """Give back the owner's slot (nothing has started on it)."""
        await self.repo.release_reservations(owner_id, at=at)

    async def held(self, owner_id: uuid.UUID) -> PrinterReservation | None:
        return await self.repo.active_reservation(owner_id)

    async def _choose(
        self,
        demand: Demand,
        minutes: PrintMinutes,
        *,
        accept_late: bool,
        exclude: frozenset[str],
        current_site: uuid.UUID | None,
    ) -> Reserved:
        await serialize_writes(self.session)
        snapshot = await self.snapshot(now=demand.now)
        demand = await _with_minutes_for(demand, minutes, snapshot.printers.values())
        fresh = False
        for attempt in range(ATTEMPTS):
            decision = route(
                demand,
                snapshot.index,
                max_alternatives=MAX_ALTERNATIVES,
                accept_late=accept_late,
                exclude=exclude,
            )
            last = attempt == ATTEMPTS - 1
            if decision.best is None and (fresh or last):
                raise unachievable(decision, demand.need_by, snapshot.printers)
            if decision.best is not None:
                if last:
                    sites = [s for s, state in snapshot.sites.items() if state.status is SiteStatus.ONLINE]
                else:
                    sites = [decision.best.site_id, *(q.site_id for q in decision.alternatives)]
                try:
                    async with self.session.begin_nested():
                        return await self._route_locked(
                            demand,
                            minutes,
                            {uuid.UUID(s) for s in sites} - {uuid.UUID(s) for s in exclude},
                            also_lock={current_site} if current_site is not None else set(),
                            snapshot_on_time=decision.best.on_time,
                            accept_late=accept_late,
                            exclude=exclude,
                            final=last,
                        )
                except _Contended:
                    log.info("routing attempt %d contended; retrying on fresh rows", attempt + 1)
            snapshot = await self.snapshot(now=demand.now, fresh=True)
            fresh = True
            demand = await _with_minutes_for(demand, minutes, snapshot.printers.values())
        raise AssertionError("unreachable: the last attempt locks every site and decides")

    async def _route_locked(
        self,
        demand: Demand,
        minutes: PrintMinutes,
        site_ids: set[uuid.UUID],
        *,
        also_lock: set[uuid.UUID],
        snapshot_on_time: bool,
        accept_late: bool,
        exclude: frozenset[str],
        final: bool,
    ) -> Reserved:
        # A routed order being moved (``also_lock``: its current site) writes to that site's rows too: the
        # order's row, changed earlier in the transaction, re-checks its foreign key to the site on the next
        # update (a KEY SHARE lock). Taken after these locks, that lock waits for a placement that holds the
        # site while it waits for ours: a deadlock. So it is locked here with the others, in id order.
        await self.repo.lock_sites(site_ids | also_lock)
        states, printers = await load_sites(self.repo, now=demand.now, site_ids=site_ids)
        demand = await _with_minutes_for(demand, minutes, printers.values())
        decision = route(
            demand, states, max_alternatives=MAX_ALTERNATIVES, accept_late=accept_late, exclude=exclude
        )
        best = decision.best
        if best is None or (snapshot_on_time and not best.on_time and not final):
            if final:
                raise unachievable(decision, demand.need_by, printers)
            raise _Contended
        return Reserved(decision=decision, quote=best, printers=printers)


async def _with_minutes_for(demand: Demand, minutes: PrintMinutes, printers: Iterable[PrinterInfo]) -> Demand:
    """The demand, with print minutes for printer profiles it has not seen yet (a fresh load)."""
    new = [info for info in printers if info.profile_key not in demand.print_minutes]
    if not new:
        return demand
    return replace(demand, print_minutes={**demand.print_minutes, **await minutes(new)})


def unachievable(
    decision: RoutingDecision, need_by: datetime, printers: Mapping[str, PrinterInfo]
) -> InvalidRequest:
    earliest = decision.earliest
    if earliest is None:
        reasons = sorted({r.reason.value for r in decision.rejections})
        return NoCapableSite(
            "no site can make this part (process, material, size, qualification or courier reach)",
            details={"rejections": reasons, "sites_evaluated": decision.sites_evaluated},
        )
    info = printers[earliest.printer_id]
    where = EarliestOut(
        delivery_at=earliest.delivery_at,
        site_id=info.site_id,
        site_slug=info.site_slug,
        service_level=earliest.service_level,
    )
    return SlaUnachievable(
        "no site can deliver by the requested time; send accept_late=true to take the earliest delivery",
        details={"need_by": need_by.isoformat(), "earliest": where.model_dump(mode="json")},
    )
