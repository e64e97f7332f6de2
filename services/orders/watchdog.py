"""The SLA watchdog: recompute an unstarted order's ETA from the inputs of its promise, flag it at risk when
the ETA passes the promise, and move it where it arrives earlier, when a site can.

The ETA is recomputed from the same inputs as the promise (the reserved slot, the exact distance, the site's
post-processing, courier cut-off and transit), so an order on schedule matches its promise exactly. It is at
risk when the ETA passes the promise by more than ``ETA_TOLERANCE``; it then moves only to a site that still
meets its need-by time and delivers more than ``ETA_TOLERANCE`` earlier than its ETA where it is (routed
against that deadline, so the router's choice among such sites), else it stays.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from parts_catalog.sqltypes import utcnow
from services.orders.models import Order
from services.orders.service import OrderService
from services.orders.states import UNSTARTED, OrderStatus
from services.routing.candidates import MATERIAL_CHANGEOVER
from services.routing.schemas import RoutingOut
from services.routing.slots import after_print

# How far an order's recomputed ETA may pass its promise before the watchdog calls it at risk, and how much
# earlier a new site must deliver for the watchdog to move it there. An order on schedule matches its promise
# exactly; the tolerance absorbs a slot that slid by the seconds between placing and the first claim, and
# promises stored before distances were kept unrounded. Minutes late are not worth a customer alert or a
# move to another city.
ETA_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class WatchOutcome:
    flagged: bool
    rerouted: bool


async def watch(orders: OrderService, order_id: uuid.UUID, *, now: datetime | None = None) -> WatchOutcome:
    """The watchdog's check of one order (module docstring)."""
    now = now or utcnow()
    order = await orders.repo.order(order_id, for_update=True)
    if order is None or order.status not in UNSTARTED or order.promised_delivery_at is None:
        return WatchOutcome(flagged=False, rerouted=False)
    eta = await current_eta(orders, order, now=now)
    if eta is None:
        return WatchOutcome(flagged=False, rerouted=False)
    order.eta = eta
    if eta <= order.promised_delivery_at + ETA_TOLERANCE:
        await orders.session.flush()
        return WatchOutcome(flagged=False, rerouted=False)
    flagged = False
    if order.status is not OrderStatus.AT_RISK:
        orders.move(
            order,
            OrderStatus.AT_RISK,
            at=now,
            reason="eta_after_promise",
            data={"eta": eta.isoformat(), "promised_delivery_at": order.promised_delivery_at.isoformat()},
        )
        flagged = True
    await orders.session.flush()
    rerouted = await orders.reroute(
        order.id, reason="sla_at_risk", now=now, on_time_only=True, deadline=eta - ETA_TOLERANCE
    )
    return WatchOutcome(flagged=flagged, rerouted=rerouted is not None)


async def current_eta(orders: OrderService, order: Order, *, now: datetime) -> datetime | None:
    """When the order arrives as things stand: its slot, slid to now if it has not started on time, the
    sliced print time once known, then post-processing, cut-off and transit at its site."""
    reservation = await orders.placement.held(order.id)
    if reservation is None or order.site_id is None or order.routing is None:
        return None
    snapshot = await orders.placement.snapshot(now=now)
    site = snapshot.sites.get(str(order.site_id))
    if site is None:
        return None
    quote = RoutingOut.model_validate(order.routing).quote
    duration = reservation.end_at - reservation.start_at
    if order.print_job_id is not None:
        view = await orders.printing.job_view(order.print_job_id)
        if view.artifact is not None:
            changeover = MATERIAL_CHANGEOVER if quote.material_change else timedelta(0)
            duration = timedelta(seconds=view.artifact.print_seconds * order.quantity) + changeover
    start = reservation.start_at if reservation.start_at >= now else site.hours.next_open(now)
    _, pickup = after_print(site, start + duration)
    transit = site.transit.transit(quote.distance_km, order.service_level or "")
    return pickup + transit if transit is not None else None
