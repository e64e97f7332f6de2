"""Orders: ask routing for a printer slot, promise a delivery, and move the order along its life.

Placing an order, in the request's one transaction: the order is written, routing reserves a slot for it
(``services.routing.placement``: snapshot, lock, re-quote, reserve, retry), printing gets the print job,
and the order keeps the decision behind its promise (``RoutingOut``) and a ``routed`` event. A routing
failure raises, and the request's transaction rolls back whole.

Re-routing (a site goes offline, a print job fails, the watchdog finds a late order) does the same for an
order that has not started printing, excluding its current site, and writes a ``rerouted`` event with the
old and the new assignment. The SLA watchdog lives in ``services.orders.watchdog``, the batch re-optimiser
in ``services.orders.reoptimize``; how an order follows its print job, in ``services.fulfilment``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from parts_catalog.models import PartRevision
from parts_catalog.service import CatalogService
from parts_catalog.sqltypes import utcnow
from services.errors import InvalidRequest, NotFound
from services.observability.logs import bind
from services.orders.audience import Audience
from services.orders.demand import demand_for, print_minutes
from services.orders.events import PUBLISH_ORDER_EVENTS, PUBLISHED_KINDS
from services.orders.models import Order, OrderEvent
from services.orders.repository import REROUTE_FAILED, OrderRepository
from services.orders.schemas import OrderEventOut, OrderIn
from services.orders.states import UNSTARTED, InvalidTransition, OrderStatus, check_move
from services.printing.service import PrintingService
from services.queue import enqueue_after_commit
from services.routing.placement import NoCapableSite, Placement, Reserved, SlaUnachievable
from services.routing.schemas import RoutingOut, quote_out
from services.routing.snapshot import PrinterInfo

log = logging.getLogger(__name__)

SLA_HOURS = {"24h": 24, "48h": 48}
# Promises further out than this are planning, not urgent spare parts.
MAX_HORIZON = timedelta(days=60)
S = OrderStatus


class NeedByInPast(InvalidRequest):
    code = "need_by_in_past"


class NeedByTooFar(InvalidRequest):
    code = "need_by_too_far"


class MaterialNotAllowed(InvalidRequest):
    code = "material_not_allowed"


class OrderService:
    def __init__(
        self,
        session: AsyncSession,
        catalog: CatalogService,
        printing: PrintingService,
        placement: Placement,
    ) -> None:
        self.session = session
        self.catalog = catalog
        self.printing = printing
        self.placement = placement
        self.repo = OrderRepository(session)

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
        # Written first, so that its reservation's foreign key holds; a refusal rolls the request back whole.
        self.session.add(order)
        await self.session.flush()
        reserved = await self.reserve(order, revision, now=now, accept_late=request.accept_late)
        self._event(order, "received", None, S.RECEIVED, at=now)
        await self._assign(order, revision, reserved, status=S.ROUTED, now=now)
        return order

    async def reserve(
        self,
        order: Order,
        revision: PartRevision,
        *,
        now: datetime,
        accept_late: bool,
        exclude: frozenset[str] = frozenset(),
        deadline: datetime | None = None,
    ) -> Reserved:
        """A printer slot for the order from routing. ``deadline``: deliver by then, if earlier than the
        order's need-by (on time then means by both)."""
        snapshot = await self.placement.snapshot(now=now)
        demand = demand_for(order, revision, snapshot, now=now, print_minutes={})
        if deadline is not None and deadline < demand.need_by:
            demand = replace(demand, need_by=deadline)

        async def minutes(printers: Iterable[PrinterInfo]) -> dict[str, float]:
            return await print_minutes(self.printing, revision, printers)

        return await self.placement.reserve(
            demand,
            minutes,
            owner_id=order.id,
            accept_late=accept_late,
            exclude=exclude,
            current_site=order.site_id,
        )

    async def _assign(
        self,
        order: Order,
        revision: PartRevision,
        reserved: Reserved,
        *,
        status: OrderStatus,
        now: datetime,
        reason: str | None = None,
        previous: dict[str, Any] | None = None,
    ) -> None:
        quote, info = reserved.quote, reserved.printer
        job = await self.printing.create_job(
            revision.id, info.spec, site_id=info.site_id, printer_id=info.printer_id, material=quote.material
        )
        routing = RoutingOut(
            decided_at=now,
            quote=quote_out(quote, reserved.printers),
            alternatives=[quote_out(q, reserved.printers) for q in reserved.decision.alternatives],
            sites_evaluated=reserved.decision.sites_evaluated,
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
        self.move(order, status, at=now, reason=reason, data=data)
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
        self.move(order, S.CANCELLED, at=now, reason="customer", data={"note": reason} if reason else {})
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
        deadline: datetime | None = None,
    ) -> Order | None:
        """Route an unstarted order again, away from its current site.

        With ``on_time_only`` the order moves only to a site that still meets its need-by time (and
        ``deadline``, when that is earlier: the watchdog's way); otherwise it takes the best delivery there
        is, late or not, and fails when no other site can make it at all (a site went offline, a job failed
        there: staying is no option). ``print_lost``: its print job failed at the site, so an order that
        was printing moves too.

        Returns:
            The order, or None when it had nothing to re-route (started, finished, or no better site).
        """
        now = now or utcnow()
        order = await self.get(order_id, visible_to=visible_to, for_update=True)
        movable = order.status in UNSTARTED or (print_lost and order.status is S.PRINTING)
        if not movable or order.site_id is None:
            return None
        await self.lock_job(order)
        revision = await self.catalog.revision(order.revision_id)
        try:
            reserved = await self.reserve(
                order,
                revision,
                now=now,
                accept_late=not on_time_only,
                exclude=frozenset({str(order.site_id)}),
                deadline=deadline,
            )
        except (SlaUnachievable, NoCapableSite) as exc:
            if on_time_only:
                return None
            await self.fail(order, exc.code, at=now, data={"cause": reason})
            return order
        await self.reassign(order, revision, reserved, reason=reason, now=now)
        if order.needs_attention == REROUTE_FAILED:
            # Moved at last (an operator's re-route, say): nothing is left for an operator to do.
            self.flag(order, None, at=now)
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

    # --- shipping (services.shipping moves a printed order along with its parcel) ------------------------

    def advance(
        self, order: Order, target: OrderStatus, *, at: datetime, data: dict[str, Any] | None = None
    ) -> None:
        self.move(order, target, at=at, data=data)

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

    # --- helpers ---------------------------------------------------------------------------------------

    async def reassign(
        self, order: Order, revision: PartRevision, reserved: Reserved, *, reason: str, now: datetime
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
            order, revision, reserved, status=S.REROUTED, now=now, reason=reason, previous=previous
        )

    async def fail(self, order: Order, code: str, *, at: datetime, data: dict[str, Any]) -> None:
        await self._let_go(order, at=at)
        order.failure_code = code
        self.move(order, S.FAILED, at=at, reason=code, data=data)
        await self.session.flush()

    async def lock_job(self, order: Order) -> None:
        """Lock the order's print job before placement locks sites: the order of locks is
        ``services.fulfilment.unit_of_work``'s (order, job, sites), and a move withdraws the job later."""
        if order.print_job_id is not None:
            await self.printing.repo.job(order.print_job_id, for_update=True)

    async def _let_go(self, order: Order, *, at: datetime) -> None:
        """Give back the printer slot and withdraw the print job (nothing has started)."""
        await self.placement.release(order.id, at=at)
        if order.print_job_id is not None:
            await self.printing.cancel_job(order.print_job_id)

    def move(
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
