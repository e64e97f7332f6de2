"""Orders: route to a printer, reserve its slot, promise a delivery; then follow the order to the end.

Placing an order, in the request's one transaction:

1. route on the process's snapshot of the registry (``services.routing.snapshot``): a first guess;
2. lock the chosen site and its runners-up (``RoutingRepository.lock_sites``), reload them from fresh rows
   and route again among them: the quote that is reserved was computed under the lock, so two orders
   never hold overlapping slots on one printer and every promise was true when it was made;
3. if the fresh quote no longer meets what the snapshot promised (another order took the slot), roll the
   attempt back to its savepoint, which releases its locks, and try again on a fresh snapshot; the last
   attempt locks every online site, so contention delays an order but never fails it;
4. reserve ``[start, print_end)``, create the print job for the printer, write the order and its events.

A routing failure raises before anything is written: the transaction rolls back whole.

Re-routing (a site goes offline, a print job fails, the watchdog finds a late order) does the same for an
order that has not started printing, excluding its current site, and writes a ``rerouted`` event with the
old and the new assignment.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from arq.connections import ArqRedis
from sqlmodel.ext.asyncio.session import AsyncSession

from parts_catalog.formats import ArchiveLimits
from parts_catalog.models import PartRevision
from parts_catalog.service import CatalogService
from parts_catalog.sqltypes import utcnow
from parts_catalog.storage import BlobStore
from services.db import SessionFactory, serialize_writes, transaction
from services.errors import DomainError, InvalidRequest, NotFound
from services.factories.schemas import SiteStatus
from services.notifications.events import PUBLISH_ORDER_EVENTS, PUBLISHED_KINDS
from services.observability.logs import bind
from services.observability.metrics import ROUTING_SECONDS
from services.orders.audience import Audience
from services.orders.models import Order, OrderEvent, PrinterReservation
from services.orders.repository import OrderRepository
from services.orders.schemas import (
    BreakdownOut,
    EarliestOut,
    OrderEventOut,
    OrderIn,
    QuoteOut,
    RoutingOut,
)
from services.orders.states import UNSTARTED, InvalidTransition, OrderStatus, check_move
from services.printing.models import LEASED, PrintJob, PrintJobStatus
from services.printing.service import PrintingService
from services.queue import enqueue_after_commit
from services.routing.candidates import MATERIAL_CHANGEOVER, VALUE_OF_HOUR
from services.routing.demand import Demand
from services.routing.geo import GeoPoint
from services.routing.quotes import Quote, RoutingDecision
from services.routing.repository import RoutingRepository
from services.routing.search import route
from services.routing.slots import after_print
from services.routing.snapshot import PrinterInfo, Snapshot, SnapshotCache, load_sites
from slicer_adapters.estimator.model import estimate
from slicer_adapters.models import MeshStats

log = logging.getLogger(__name__)

REROUTE_SITE = "reroute_site"
SHIP_ORDER = "ship_order"
SLA_HOURS = {"24h": 24, "48h": 48}
# Promises further out than this are planning, not urgent spare parts.
MAX_HORIZON = timedelta(days=60)
MAX_ALTERNATIVES = 3
# The re-optimiser's price of an hour of lateness, in courier-cost units (the router's value of an hour).
LATENESS_WEIGHT = 1.0
ATTEMPTS = 4
# How far an order's recomputed ETA may pass its promise before the watchdog calls it at risk, and how much
# earlier a new site must deliver for the watchdog to move it there. The ETA is recomputed from the same
# inputs as the promise, so an order on schedule matches it exactly; the tolerance absorbs a slot that
# slid by the seconds between placing and the first claim, and promises stored before distances were kept
# unrounded. Minutes late are not worth a customer alert or a move to another city.
ETA_TOLERANCE = timedelta(minutes=5)
S = OrderStatus


def reroute_site_job_id(site_id: uuid.UUID) -> str:
    return f"{REROUTE_SITE}:{site_id}"


def enqueue_shipping(session: AsyncSession, order_id: uuid.UUID) -> None:
    """After the commit, book the printed order's courier (``workers.jobs.shipping.ship_order``)."""
    enqueue_after_commit(session, SHIP_ORDER, str(order_id), job_id=f"{SHIP_ORDER}:{order_id}")


def enqueue_site_reroute(session: AsyncSession, site_id: uuid.UUID) -> None:
    """After the commit, move the site's unstarted orders elsewhere (``workers.jobs.orders.reroute_site``)."""
    enqueue_after_commit(session, REROUTE_SITE, str(site_id), job_id=reroute_site_job_id(site_id))


class SlaUnachievable(InvalidRequest):
    code = "sla_unachievable"


class NoCapableSite(InvalidRequest):
    code = "no_capable_site"


class NeedByInPast(InvalidRequest):
    code = "need_by_in_past"


class NeedByTooFar(InvalidRequest):
    code = "need_by_too_far"


class MaterialNotAllowed(InvalidRequest):
    code = "material_not_allowed"


@dataclass(frozen=True, slots=True)
class _Placement:
    decision: RoutingDecision
    quote: Quote
    printers: Mapping[str, PrinterInfo]


@dataclass(frozen=True, slots=True)
class WatchOutcome:
    flagged: bool
    rerouted: bool


class _Contended(Exception):
    """The locked, fresh quote lost what the snapshot promised: try again."""


def _facts(revision: PartRevision) -> dict[str, Any]:
    """The geometry report's facts (sizes in mm, face areas by direction); a ready revision has them."""
    facts: dict[str, Any] = (revision.geometry_report or {}).get("facts") or {}
    return facts


def _seconds(delta: timedelta) -> float:
    return delta.total_seconds()


def hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def merit(cost: float, delivery: datetime, need_by: datetime, *, now: datetime) -> float:
    """What a promise costs, in courier-cost units: the courier, the router's value of each hour to the
    door, and ``LATENESS_WEIGHT`` more per hour late. Lower is better; the re-optimiser compares these."""
    late = max(0.0, hours(delivery - need_by))
    return cost + VALUE_OF_HOUR * max(0.0, hours(delivery - now)) + LATENESS_WEIGHT * late


def quote_out(quote: Quote, printers: Mapping[str, PrinterInfo]) -> QuoteOut:
    info = printers[quote.printer_id]
    b = quote.breakdown
    return QuoteOut(
        site_id=uuid.UUID(quote.site_id),
        site_slug=info.site_slug,
        printer_id=info.printer_id,
        printer_key=info.key,
        service_level=quote.service_level,
        material=quote.material,
        material_change=quote.changeover,
        print_start=quote.start,
        print_end=quote.print_end,
        ready_at=quote.ready_at,
        pickup_at=quote.pickup_at,
        delivery_at=quote.delivery_at,
        # Unrounded: the SLA watchdog recomputes the ETA from it, and a rounded distance made about half of
        # all orders a few milliseconds "late" against a promise computed from the exact one.
        distance_km=quote.distance_km,
        courier_cost=round(quote.cost, 2),
        on_time=quote.on_time,
        breakdown=BreakdownOut(
            queue_wait_seconds=_seconds(b.queue_wait),
            print_seconds=_seconds(b.printing),
            post_processing_seconds=_seconds(b.post_processing),
            courier_wait_seconds=_seconds(b.courier_wait),
            transit_seconds=_seconds(b.transit),
            total_seconds=_seconds(b.total),
        ),
        lost_because=quote.lost_because.value if quote.lost_because else None,
    )


class OrderService:
    def __init__(
        self,
        session: AsyncSession,
        catalog: CatalogService,
        printing: PrintingService,
        snapshots: SnapshotCache,
    ) -> None:
        self.session = session
        self.catalog = catalog
        self.printing = printing
        self.snapshots = snapshots
        self.repo = OrderRepository(session)
        self.routing = RoutingRepository(session)

    # --- placing ---------------------------------------------------------------------------------------

    async def place(
        self,
        organization_id: uuid.UUID,
        request: OrderIn,
        *,
        created_by: str | None,
        now: datetime | None = None,
    ) -> Order:
        """Route, reserve and promise; raises SlaUnachievable (with the earliest delivery) or another 4xx."""
        now = now or utcnow()
        part, revision = await self.catalog.printable_revision(
            organization_id, part_number=request.part_number, revision_id=request.revision_id
        )
        need_by = request.need_by or now + timedelta(hours=SLA_HOURS[request.sla or "48h"])
        if need_by <= now:
            raise NeedByInPast("need_by is in the past", details={"need_by": need_by.isoformat()})
        if need_by > now + MAX_HORIZON:
            raise NeedByTooFar(f"need_by is more than {MAX_HORIZON.days} days ahead")
        if request.material is not None:
            if request.material.casefold() not in {m.casefold() for m in part.materials}:
                raise MaterialNotAllowed(
                    f"{request.material!r} is not one of the part's materials",
                    details={"materials": part.materials},
                )
            materials = [request.material]
        else:
            materials = list(part.materials)
        destination = request.destination
        order = Order(
            organization_id=organization_id,
            part_id=part.id,
            revision_id=revision.id,
            process=part.process,
            quantity=request.quantity,
            materials=materials,
            destination_lat=destination.latitude,
            destination_lon=destination.longitude,
            address=destination.address.model_dump(mode="json"),
            contact=destination.contact.model_dump(mode="json"),
            sla=request.sla,
            need_by=need_by,
            accept_late=request.accept_late,
            status=S.RECEIVED,
            created_by=created_by,
            created_at=now,
            updated_at=now,
        )
        bind(order_id=order.id)
        placement = await self._route(order, revision, now=now, accept_late=request.accept_late)
        self.session.add(order)
        await self.session.flush()
        self._event(order, "received", None, S.RECEIVED, at=now)
        await self._assign(order, revision, placement, status=S.ROUTED, now=now)
        return order

    async def print_minutes(
        self, revision: PartRevision, printers: Iterable[PrinterInfo]
    ) -> dict[str, float]:
        """Minutes for one copy per printer profile: the slice cache's figure, else the built-in estimate
        from the geometry report's facts."""
        specs = {info.profile_key: info.spec for info in printers}
        if not specs:
            return {}
        sliced = await self.printing.cached_print_seconds(revision, list(specs))
        facts = _facts(revision)
        stats = MeshStats(
            volume_mm3=facts.get("volume_mm3", 0.0),
            area_up_mm2=facts.get("area_up_mm2", 0.0),
            area_down_mm2=facts.get("area_down_mm2", 0.0),
            area_side_mm2=facts.get("area_side_mm2", 0.0),
            size_mm=tuple(facts.get("size") or (0.0, 0.0, 0.0)),
        )
        minutes: dict[str, float] = {}
        for key, spec in specs.items():
            seconds = sliced.get(key) or estimate(stats, spec.profile).print_seconds
            if seconds > 0:
                minutes[key] = seconds / 60
        return minutes

    def demand_for(
        self,
        order: Order,
        revision: PartRevision,
        snapshot: Snapshot,
        *,
        now: datetime,
        print_minutes: Mapping[str, float],
    ) -> Demand:
        size = _facts(revision).get("size") or [0.0, 0.0, 0.0]
        return Demand(
            revision_id=str(revision.id),
            process=order.process.value,
            materials=frozenset(m.casefold() for m in order.materials),
            # A flat model is rejected by the check; the floor only keeps the arithmetic defined.
            part_size_mm=(max(size[0], 0.01), max(size[1], 0.01), max(size[2], 0.01)),
            quantity=order.quantity,
            destination=GeoPoint(order.destination_lat, order.destination_lon),
            need_by=order.need_by,
            now=now,
            service_levels=snapshot.service_levels or ("standard",),
            print_minutes=print_minutes,
        )

    async def _with_minutes_for(
        self, demand: Demand, revision: PartRevision, printers: Iterable[PrinterInfo]
    ) -> Demand:
        """The demand, with print minutes for printer profiles it has not seen yet (a fresh load)."""
        new = [info for info in printers if info.profile_key not in demand.print_minutes]
        if not new:
            return demand
        minutes = await self.print_minutes(revision, new)
        return replace(demand, print_minutes={**demand.print_minutes, **minutes})

    async def _route(
        self,
        order: Order,
        revision: PartRevision,
        *,
        now: datetime,
        accept_late: bool,
        exclude: frozenset[str] = frozenset(),
        deadline: datetime | None = None,
    ) -> _Placement:
        """``_choose``, timed (``spareflow_routing_seconds``) by outcome: routed or the refusal's code.

        ``deadline``: deliver by then, if earlier than the order's need-by (on time means by both)."""
        started, outcome = time.perf_counter(), "error"
        try:
            placement = await self._choose(
                order, revision, now=now, accept_late=accept_late, exclude=exclude, deadline=deadline
            )
            outcome = "routed"
            return placement
        except DomainError as exc:
            outcome = exc.code
            raise
        finally:
            ROUTING_SECONDS.labels(outcome).observe(time.perf_counter() - started)

    async def _choose(
        self,
        order: Order,
        revision: PartRevision,
        *,
        now: datetime,
        accept_late: bool,
        exclude: frozenset[str],
        deadline: datetime | None,
    ) -> _Placement:
        """Choose and lock a quote (module docstring). The caller reserves it in the same transaction."""
        await serialize_writes(self.session)
        snapshot = await self.snapshots.get(self.routing, now=now)
        minutes = await self.print_minutes(revision, snapshot.printers.values())
        demand = self.demand_for(order, revision, snapshot, now=now, print_minutes=minutes)
        if deadline is not None and deadline < demand.need_by:
            demand = replace(demand, need_by=deadline)
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
                raise self._unachievable(decision, demand.need_by, snapshot.printers)
            if decision.best is not None:
                if last:
                    sites = [s for s, state in snapshot.sites.items() if state.status is SiteStatus.ONLINE]
                else:
                    sites = [decision.best.site_id, *(q.site_id for q in decision.alternatives)]
                try:
                    async with self.session.begin_nested():
                        return await self._route_locked(
                            demand,
                            revision,
                            {uuid.UUID(s) for s in sites} - {uuid.UUID(s) for s in exclude},
                            also_lock={order.site_id} if order.site_id is not None else set(),
                            snapshot_on_time=decision.best.on_time,
                            accept_late=accept_late,
                            exclude=exclude,
                            final=last,
                        )
                except _Contended:
                    log.info("order routing attempt %d contended; retrying on fresh rows", attempt + 1)
            snapshot = await self.snapshots.get(self.routing, now=now, fresh=True)
            fresh = True
            demand = await self._with_minutes_for(demand, revision, snapshot.printers.values())
        raise AssertionError("unreachable: the last attempt locks every site and decides")

    async def _route_locked(
        self,
        demand: Demand,
        revision: PartRevision,
        site_ids: set[uuid.UUID],
        *,
        also_lock: set[uuid.UUID],
        snapshot_on_time: bool,
        accept_late: bool,
        exclude: frozenset[str],
        final: bool,
    ) -> _Placement:
        # A routed order being moved (``also_lock``: its current site) writes to that site's rows too: the
        # order's row, changed earlier in the transaction, re-checks its foreign key to the site on the next
        # update (a KEY SHARE lock). Taken after these locks, that lock waits for a placement that holds the
        # site while it waits for ours: a deadlock. So it is locked here with the others, in id order.
        await self.routing.lock_sites(site_ids | also_lock)
        states, printers = await load_sites(self.routing, now=demand.now, site_ids=site_ids)
        demand = await self._with_minutes_for(demand, revision, printers.values())
        decision = route(
            demand, states, max_alternatives=MAX_ALTERNATIVES, accept_late=accept_late, exclude=exclude
        )
        best = decision.best
        if best is None or (snapshot_on_time and not best.on_time and not final):
            if final:
                raise self._unachievable(decision, demand.need_by, printers)
            raise _Contended
        return _Placement(decision=decision, quote=best, printers=printers)

    @staticmethod
    def _unachievable(
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

    async def _assign(
        self,
        order: Order,
        revision: PartRevision,
        placement: _Placement,
        *,
        status: OrderStatus,
        now: datetime,
        reason: str | None = None,
        previous: dict[str, Any] | None = None,
    ) -> None:
        quote = placement.quote
        info = placement.printers[quote.printer_id]
        self.session.add(
            PrinterReservation(
                printer_id=info.printer_id, order_id=order.id, start_at=quote.start, end_at=quote.print_end
            )
        )
        job = await self.printing.create_job(
            revision.id, info.spec, site_id=info.site_id, printer_id=info.printer_id, material=quote.material
        )
        routing = RoutingOut(
            decided_at=now,
            quote=quote_out(quote, placement.printers),
            alternatives=[quote_out(q, placement.printers) for q in placement.decision.alternatives],
            sites_evaluated=placement.decision.sites_evaluated,
        )
        order.site_id, order.printer_id, order.print_job_id = info.site_id, info.printer_id, job.id
        order.service_level = quote.service_level
        order.promised_delivery_at = order.eta = quote.delivery_at
        order.routing = routing.model_dump(mode="json")
        data: dict[str, Any] = {
            "site": info.site_slug,
            "printer": info.key,
            "print_job_id": str(job.id),
            "promised_delivery_at": quote.delivery_at.isoformat(),
            "on_time": quote.on_time,
        }
        if previous is not None:
            data["previous"] = previous
        self._move(order, status, at=now, reason=reason, data=data)
        await self.session.flush()

    # --- reading ---------------------------------------------------------------------------------------

    async def get(
        self, order_id: uuid.UUID, *, visible_to: uuid.UUID | None, for_update: bool = False
    ) -> Order:
        order = await self.repo.order(order_id, visible_to=visible_to, for_update=for_update)
        if order is None:
            raise NotFound("no such order", code="order_not_found", details={"order_id": str(order_id)})
        return order

    async def events(self, order_id: uuid.UUID, *, visible_to: uuid.UUID | None) -> list[OrderEventOut]:
        """The order's events as ``visible_to`` may see them (``services.orders.audience``)."""
        await self.get(order_id, visible_to=visible_to)
        audience = Audience.scoped_to(visible_to)
        return [OrderEventOut.seen_by(e, audience) for e in await self.repo.events(order_id)]

    async def page(
        self,
        *,
        visible_to: uuid.UUID | None,
        status: OrderStatus | None,
        cursor: uuid.UUID | None,
        limit: int,
    ) -> tuple[list[Order], uuid.UUID | None]:
        """Newest first; ``cursor`` is the last order of the previous page. Returns the next cursor too."""
        before = None
        if cursor is not None:
            last = await self.repo.order(cursor, visible_to=visible_to)
            if last is None:
                raise InvalidRequest("unknown cursor", code="invalid_cursor")
            before = (last.created_at, last.id)
        found = list(
            await self.repo.page(visible_to=visible_to, status=status, before=before, limit=limit + 1)
        )
        more = len(found) > limit
        return found[:limit], found[limit - 1].id if more else None

    # --- changing --------------------------------------------------------------------------------------

    async def cancel(
        self, order_id: uuid.UUID, *, visible_to: uuid.UUID | None, reason: str, now: datetime | None = None
    ) -> Order:
        """Cancel before printing starts; the printer slot is given back. 409 once printing has started."""
        now = now or utcnow()
        order = await self.get(order_id, visible_to=visible_to, for_update=True)
        check_move(order.status, S.CANCELLED)
        await self._let_go(order, at=now)
        self._move(order, S.CANCELLED, at=now, reason="customer", data={"note": reason} if reason else {})
        await self.session.flush()
        return order

    async def reroute(
        self,
        order_id: uuid.UUID,
        *,
        reason: str,
        now: datetime | None = None,
        on_time_only: bool = False,
        visible_to: uuid.UUID | None = None,
        print_lost: bool = False,
        improve_on: datetime | None = None,
    ) -> Order | None:
        """Route an unstarted order again, away from its current site.

        With ``on_time_only`` the order moves only to a site that still meets its need-by time (the
        watchdog's way); otherwise it takes the best delivery there is, late or not, and fails when no
        other site can make it at all (a site went offline, a job failed there: staying is no option).
        ``print_lost``: its print job failed at the site, so an order that was printing moves too.
        ``improve_on``: the order's current ETA where it is; with ``on_time_only`` it moves only to a promise
        earlier than that by more than ``ETA_TOLERANCE`` (the watchdog's way: the router's choice among the
        sites that make that deadline, not any site that still meets need-by).

        Returns:
            The order, or None when it had nothing to re-route (started, finished, or no better site).
        """
        now = now or utcnow()
        order = await self.get(order_id, visible_to=visible_to, for_update=True)
        movable = order.status in UNSTARTED or (print_lost and order.status is S.PRINTING)
        if not movable or order.site_id is None:
            return None
        revision = await self.catalog.revision(order.revision_id)
        try:
            placement = await self._route(
                order,
                revision,
                now=now,
                accept_late=not on_time_only,
                exclude=frozenset({str(order.site_id)}),
                deadline=improve_on - ETA_TOLERANCE if improve_on is not None else None,
            )
        except (SlaUnachievable, NoCapableSite) as exc:
            if on_time_only:
                return None
            await self._fail(order, exc.code, at=now, data={"cause": reason})
            return order
        await self._reassign(order, revision, placement, reason=reason, now=now)
        return order

    async def reroute_by_operator(self, order_id: uuid.UUID) -> Order:
        order = await self.reroute(order_id, reason="operator")
        if order is None:
            current = await self.get(order_id, visible_to=None)
            raise InvalidTransition(
                f"an order that is {current.status} cannot be re-routed",
                details={"status": current.status.value},
            )
        return order

    async def sync_with_job(
        self, job: PrintJob, *, now: datetime | None = None, reason: str | None = None
    ) -> None:
        """Follow the order's print job: preparing, ready, printing (claimed by the site's agent), printed;
        a lost print back to ready; a failed job re-routes or fails the order. Idempotent.

        The caller locks the order before the job (``OrderRepository.order_of_job``), as everywhere.
        """
        now = now or utcnow()
        order = await self.repo.order_of_job(job.id)
        if order is None or (order.status not in UNSTARTED and order.status is not S.PRINTING):
            return
        status = job.status
        if status is PrintJobStatus.WAITING_GEOMETRY and job.attempts > 0:
            if order.status in (S.ROUTED, S.REROUTED):
                self._move(order, S.PREPARING, at=now)
        elif status is PrintJobStatus.READY:
            if order.status in (S.ROUTED, S.REROUTED, S.PREPARING):
                self._move(order, S.READY_FOR_PRINT, at=now)
            elif order.status is S.PRINTING:
                self._move(order, S.READY_FOR_PRINT, at=now, reason=reason or "print_lost")
        elif status in LEASED:
            if order.status in (S.READY_FOR_PRINT, S.AT_RISK):
                data = {"print_job_id": str(job.id), "fence": job.fence}
                self._move(order, S.PRINTING, at=now, data=data)
        elif status is PrintJobStatus.DONE:
            if order.status is S.PRINTING:
                # The site's report for operators, without the lease token's hash and the request's
                # fingerprint, which only the print job's own idempotency check needs.
                completion = job.completion or {}
                report = {k: completion.get(k) for k in ("fence", "part_weight_g", "qa_checks", "notes")}
                self._move(order, S.PRINTED, at=now, data={"print_job_id": str(job.id), **report})
                enqueue_shipping(self.session, order.id)
        elif status is PrintJobStatus.FAILED:
            if job.failure_code == "revision_rejected":
                await self._fail(order, job.failure_code, at=now, data={"message": job.failure_message})
            else:
                await self.reroute(
                    order.id, reason=f"print_job_failed:{job.failure_code}", now=now, print_lost=True
                )
        await self.session.flush()

    # --- shipping (services.shipping moves a printed order along with its parcel) ------------------------

    def advance(
        self, order: Order, target: OrderStatus, *, at: datetime, data: dict[str, Any] | None = None
    ) -> None:
        self._move(order, target, at=at, data=data)

    def flag(
        self, order: Order, reason: str | None, *, at: datetime, data: dict[str, Any] | None = None
    ) -> None:
        """Raise the needs-attention flag with a reason, or clear it (None); an event when it changes."""
        if order.needs_attention == reason:
            return
        kind = "needs_attention" if reason else "attention_cleared"
        cause = reason or order.needs_attention
        self._event(order, kind, order.status, order.status, at=at, reason=cause, data=data)
        order.needs_attention = reason
        order.updated_at = at

    def note(self, order: Order, kind: str, *, at: datetime, data: dict[str, Any]) -> None:
        """An event that changes no status (a booked shipment, say)."""
        self._event(order, kind, None, None, at=at, data=data)

    async def watch(self, order_id: uuid.UUID, *, now: datetime | None = None) -> WatchOutcome:
        """The SLA watchdog's check of one order: recompute its ETA, flag it at risk when the ETA passes the
        promise by more than ``ETA_TOLERANCE``, and move it to a site that still meets its need-by time and
        delivers earlier than the ETA where it is (``reroute``'s ``improve_on``), when there is one."""
        now = now or utcnow()
        order = await self.repo.order(order_id, for_update=True)
        if order is None or order.status not in UNSTARTED or order.promised_delivery_at is None:
            return WatchOutcome(flagged=False, rerouted=False)
        eta = await self.current_eta(order, now=now)
        if eta is None:
            return WatchOutcome(flagged=False, rerouted=False)
        order.eta = eta
        if eta <= order.promised_delivery_at + ETA_TOLERANCE:
            await self.session.flush()
            return WatchOutcome(flagged=False, rerouted=False)
        flagged = False
        if order.status is not S.AT_RISK:
            self._move(
                order,
                S.AT_RISK,
                at=now,
                reason="eta_after_promise",
                data={"eta": eta.isoformat(), "promised_delivery_at": order.promised_delivery_at.isoformat()},
            )
            flagged = True
        await self.session.flush()
        rerouted = await self.reroute(
            order.id, reason="sla_at_risk", now=now, on_time_only=True, improve_on=eta
        )
        return WatchOutcome(flagged=flagged, rerouted=rerouted is not None)

    async def current_eta(self, order: Order, *, now: datetime) -> datetime | None:
        """When the order arrives as things stand: its slot, slid to now if it has not started on time, the
        sliced print time once known, then post-processing, cut-off and transit at its site."""
        reservation = await self.repo.active_reservation(order.id)
        if reservation is None or order.site_id is None or order.routing is None:
            return None
        snapshot = await self.snapshots.get(self.routing, now=now)
        site = snapshot.sites.get(str(order.site_id))
        if site is None:
            return None
        duration = reservation.end_at - reservation.start_at
        if order.print_job_id is not None:
            view = await self.printing.job_view(order.print_job_id)
            if view.artifact is not None:
                changeover = (
                    MATERIAL_CHANGEOVER if order.routing["quote"]["material_change"] else timedelta(0)
                )
                duration = timedelta(seconds=view.artifact.print_seconds * order.quantity) + changeover
        start = reservation.start_at if reservation.start_at >= now else site.hours.next_open(now)
        _, pickup = after_print(site, start + duration)
        transit = site.transit.transit(order.routing["quote"]["distance_km"], order.service_level or "")
        return pickup + transit if transit is not None else None

    # --- batch re-optimisation -------------------------------------------------------------------------

    async def move_to_site(
        self, order_id: uuid.UUID, site_id: str, *, min_gain: float, now: datetime
    ) -> Order | None:
        """Re-route an unstarted order to one site, if the fresh quote there beats its current promise's
        ``merit`` by ``min_gain`` without delivering later than the order is now heading for (the later of
        its promise and its ETA). None: not moved."""
        order = await self.repo.order(order_id, for_update=True)
        if (
            order is None
            or order.status not in UNSTARTED
            or order.routing is None
            or str(order.site_id) == site_id
        ):
            return None
        revision = await self.catalog.revision(order.revision_id)
        snapshot = await self.snapshots.get(self.routing, now=now)
        others = frozenset(snapshot.sites) - {site_id}
        try:
            placement = await self._route(order, revision, now=now, accept_late=True, exclude=others)
        except (SlaUnachievable, NoCapableSite):
            return None
        quote = placement.quote
        eta = order.eta or quote.delivery_at
        # A move the order does not need never delivers later than it is heading for: the customer plans
        # around the promise, and the watchdog, which moves an order only to an earlier delivery, would
        # otherwise be undone here and move it out again (the two would take turns with it).
        if quote.delivery_at > max(eta, order.promised_delivery_at or eta):
            return None
        current = merit(order.routing["quote"]["courier_cost"], eta, order.need_by, now=now)
        if current - merit(quote.cost, quote.delivery_at, order.need_by, now=now) < min_gain:
            return None
        await self._reassign(order, revision, placement, reason="reoptimized", now=now)
        return order

    # --- helpers ---------------------------------------------------------------------------------------

    async def _reassign(
        self, order: Order, revision: PartRevision, placement: _Placement, *, reason: str, now: datetime
    ) -> None:
        """Move an unstarted order to a new quote; the event keeps the old assignment."""
        previous = {
            "site_id": str(order.site_id),
            "printer_id": str(order.printer_id),
            "print_job_id": str(order.print_job_id),
            "promised_delivery_at": order.promised_delivery_at.isoformat()
            if order.promised_delivery_at
            else None,
        }
        await self._let_go(order, at=now)
        order.reroutes += 1
        await self._assign(
            order, revision, placement, status=S.REROUTED, now=now, reason=reason, previous=previous
        )

    async def _fail(self, order: Order, code: str, *, at: datetime, data: dict[str, Any]) -> None:
        await self._let_go(order, at=at)
        order.failure_code = code
        self._move(order, S.FAILED, at=at, reason=code, data=data)
        await self.session.flush()

    async def _let_go(self, order: Order, *, at: datetime) -> None:
        """Give back the printer slot and withdraw the print job (nothing has started)."""
        await self.routing.release_reservations(order.id, at=at)
        if order.print_job_id is not None:
            await self.printing.cancel_job(order.print_job_id)

    def _move(
        self,
        order: Order,
        target: OrderStatus,
        *,
        at: datetime,
        reason: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        check_move(order.status, target)
        self._event(order, target.value, order.status, target, at=at, reason=reason, data=data)
        order.status = target
        order.updated_at = at

    def _event(
        self,
        order: Order,
        kind: str,
        from_status: OrderStatus | None,
        to_status: OrderStatus | None,
        *,
        at: datetime,
        reason: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.session.add(
            OrderEvent(
                order_id=order.id,
                at=at,
                kind=kind,
                from_status=from_status,
                to_status=to_status,
                reason=reason,
                data=data or {},
            )
        )
        if kind in PUBLISHED_KINDS:
            # Outbound webhooks: wake the publisher after the commit (one job id: wake-ups coalesce).
            enqueue_after_commit(self.session, PUBLISH_ORDER_EVENTS, job_id=PUBLISH_ORDER_EVENTS)


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
        catalog = CatalogService(session, blobs, archive_limits=archive_limits)
        yield OrderService(session, catalog, PrintingService(session, catalog), snapshots)
