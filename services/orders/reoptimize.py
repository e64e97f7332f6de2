"""The batch re-optimiser: look at every unstarted order at once and move those a better plan places
elsewhere (``services.routing.optimizer`` decides; this module feeds it and applies its moves).

Orders are routed one by one as they come; after a burst, a site going offline or cancellations, a joint
plan can be cheaper (courier cost) and later less often. The plan is an approximation (time buckets, a
printer free for the whole horizon), so each proposed move is checked again, under the site lock, by routing
the order to the proposed site from fresh rows: it is applied only if that real quote beats the order's
current promise by ``min_gain``. Moves of one group (they share printers) go in one transaction: all or
none. An order that started meanwhile is never moved (``move_to_site``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby

from parts_catalog.models import PartRevision
from services.loops import ItemFailures
from services.orders.demand import demand_for, print_minutes
from services.orders.models import Order
from services.orders.service import OrderService
from services.orders.states import UNSTARTED
from services.routing.candidates import VALUE_OF_HOUR, free_quotes
from services.routing.geo import haversine_km
from services.routing.optimizer import Job, Move, Option, PrinterCapacity, Problem, moves, solve
from services.routing.placement import NoCapableSite, SlaUnachievable
from services.routing.schemas import RoutingOut

log = logging.getLogger(__name__)

HORIZON = timedelta(hours=72)
MAX_SITES = 8  # candidate sites per order besides its own: the nearest capable ones
MAX_ORDERS = 2000

OpenOrders = Callable[[], AbstractAsyncContextManager[OrderService]]
# The re-optimiser's price of an hour of lateness, in courier-cost units (the router's value of an hour).
LATENESS_WEIGHT = 1.0


def hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def merit(cost: float, delivery: datetime, need_by: datetime, *, now: datetime) -> float:
    """What a promise costs, in courier-cost units: the courier, the router's value of each hour to the
    door, and ``LATENESS_WEIGHT`` more per hour late. Lower is better; the re-optimiser compares these."""
    late = max(0.0, hours(delivery - need_by))
    return cost + VALUE_OF_HOUR * max(0.0, hours(delivery - now)) + LATENESS_WEIGHT * late


@dataclass(frozen=True, slots=True)
class Report:
    orders: int
    printers: int
    plan_cost: float
    placed: int
    solve_seconds: float
    method: str
    proposed: int
    applied: int


class _GroupAbandoned(Exception):
    """A move of the group did not hold up against fresh rows: roll back the whole group."""


async def move_to_site(
    orders: OrderService, order_id: uuid.UUID, site_id: str, *, min_gain: float, now: datetime
) -> Order | None:
    """Re-route an unstarted order to one site, if the fresh quote there beats its current promise's
    ``merit`` by ``min_gain`` without delivering later than the order is now heading for (the later of its
    promise and its ETA). None: not moved."""
    order = await orders.repo.order(order_id, for_update=True)
    if (
        order is None
        or order.status not in UNSTARTED
        or order.routing is None
        or str(order.site_id) == site_id
    ):
        return None
    await orders.lock_job(order)
    revision = await orders.catalog.revision(order.revision_id)
    snapshot = await orders.placement.snapshot(now=now)
    others = frozenset(snapshot.sites) - {site_id}
    try:
        reserved = await orders.reserve(order, revision, now=now, accept_late=True, exclude=others)
    except (SlaUnachievable, NoCapableSite):
        return None
    quote = reserved.quote
    eta = order.eta or quote.delivery_at
    # A move the order does not need never delivers later than it is heading for: the customer plans around
    # the promise, and the watchdog, which moves an order only to an earlier delivery, would otherwise be
    # undone here and move it out again (the two would take turns with it).
    if quote.delivery_at > max(eta, order.promised_delivery_at or eta):
        return None
    current = merit(RoutingOut.model_validate(order.routing).quote.courier_cost, eta, order.need_by, now=now)
    if current - merit(quote.cost, quote.delivery_at, order.need_by, now=now) < min_gain:
        return None
    await orders.reassign(order, revision, reserved, reason="reoptimized", now=now)
    return order


async def build_problem(orders: OrderService, *, now: datetime, horizon: timedelta = HORIZON) -> Problem:
    """Every unstarted order as a job, with options on its own site's printers and on the nearest capable
    sites' (``MAX_SITES``), each printer free for ``horizon``.

    An option's ``transit_cost`` is the order's merit there (``OrderService.merit``: courier cost plus the
    router's value of each hour to the door, queue-free), so that the plan and the router agree on what is
    better; the optimizer adds lateness from its queue model on top.
    """
    snapshot = await orders.placement.snapshot(now=now, fresh=True)
    jobs: list[Job] = []
    used: dict[str, str] = {}
    # Many orders share a part: its revision and print minutes are read once.
    revisions: dict[uuid.UUID, tuple[PartRevision, dict[str, float]]] = {}
    for order in await orders.repo.unstarted_orders(limit=MAX_ORDERS):
        if order.revision_id not in revisions:
            revision = await orders.catalog.revision(order.revision_id)
            revisions[order.revision_id] = (
                revision,
                await print_minutes(orders.printing, revision, snapshot.printers.values()),
            )
        revision, minutes = revisions[order.revision_id]
        demand = demand_for(order, revision, snapshot, now=now, print_minutes=minutes)
        own = snapshot.sites.get(str(order.site_id))
        candidates = [] if own is None else [(haversine_km(demand.destination, own.location), own)]
        for km, site in snapshot.index.nearest(demand.destination):
            if len(candidates) > MAX_SITES:
                break
            if own is None or site.site_id != own.site_id:
                candidates.append((km, site))
        options = []
        for km, site in candidates:
            for quote in free_quotes(demand, site, km):
                used[quote.printer_id] = site.site_id
                printing = hours(quote.print_end - quote.start)
                options.append(
                    Option(
                        printer_id=quote.printer_id,
                        site_id=site.site_id,
                        print_hours=printing,
                        delivery_hours_if_started_now=max(hours(quote.delivery_at - now), printing),
                        transit_cost=merit(quote.cost, quote.delivery_at, order.need_by, now=now),
                    )
                )
        jobs.append(
            Job(
                job_id=str(order.id),
                current_assignment=str(order.printer_id) if order.printer_id else None,
                need_by_hours=hours(order.need_by - now),
                options=tuple(options),
            )
        )
    printers = tuple(
        PrinterCapacity(printer_id=printer_id, site_id=site_id, capacity_hours=hours(horizon))
        for printer_id, site_id in sorted(used.items())
    )
    return Problem(jobs=tuple(jobs), printers=printers, lateness_weight=LATENESS_WEIGHT)


async def reoptimize(
    open_orders: OpenOrders, *, min_gain: float, apply: bool, now: datetime, time_limit_s: float = 1.0
) -> tuple[Report, list[Move]]:
    """Plan, and (with ``apply``) carry out the moves that hold up. Each group in a transaction of its own."""
    async with open_orders() as orders:
        problem = await build_problem(orders, now=now)
    if not problem.jobs:
        return Report(0, 0, 0.0, 0, 0.0, "none", 0, 0), []
    # The solver is CPU-bound for up to its time limit: off the event loop.
    plan = await asyncio.to_thread(solve, problem, time_limit_s=time_limit_s)
    proposed = [
        m for m in await asyncio.to_thread(moves, plan, problem, min_improvement=min_gain) if m.to_printer
    ]
    sites = {printer.printer_id: printer.site_id for printer in problem.printers}
    applied = 0
    if apply:
        # A group that fails is rolled back and left for the next run; the other groups go on.
        failures = ItemFailures[int]("reoptimize_orders")
        for group_id, group in groupby(sorted(proposed, key=lambda m: m.group), key=lambda m: m.group):
            members = list(group)
            with failures.item(group_id):
                try:
                    async with open_orders() as orders:
                        for move in members:
                            assert move.to_printer is not None
                            moved = await move_to_site(
                                orders,
                                uuid.UUID(move.job_id),
                                sites[move.to_printer],
                                min_gain=min_gain,
                                now=now,
                            )
                            if moved is None:
                                raise _GroupAbandoned
                    applied += len(members)
                except _GroupAbandoned:
                    log.info(
                        "re-optimiser: a group of %d moves did not hold up against fresh rows", len(members)
                    )
    report = Report(
        orders=len(problem.jobs),
        printers=len(problem.printers),
        plan_cost=plan.cost,
        placed=plan.placed,
        solve_seconds=plan.solve_seconds,
        method=plan.method,
        proposed=len(proposed),
        applied=applied,
    )
    log.info("re-optimiser: %s", report)
    return report, proposed
