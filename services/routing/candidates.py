"""What one site can offer a demand: its capable printers, the courier levels that reach, their quotes.

Timeline of one quote (all aware UTC datetimes; local time only inside the calendars)::

    now -> start -> print_end -> ready_at -> pickup_at -> delivery_at
      queue_wait  printing   post_processing courier_wait  transit

- ``start``: the first instant the printer is free for the whole print *and* the site is open: a print (and
  any material changeover before it) must be started by staff, then runs unattended through closed hours.
- ``ready_at``: post-processing and QA progress only while the site is open.
- ``pickup_at``: the first courier cut-off at or after ``ready_at``.
- ``delivery_at``: ``pickup_at`` + the site's transit rule for the service level and distance.
The caller reserves exactly ``[start, print_end)`` on ``printer_id``.

Material policy: a printer with one of the acceptable materials loaded prints it as is; one that only
supports it prints after ``MATERIAL_CHANGEOVER`` (swap, purge, calibrate), which is part of the reservation
and of ``breakdown.printing``. Copies of an order print on one printer, one after the other.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.factories.schemas import SiteStatus
from services.routing.demand import Demand
from services.routing.quotes import Breakdown, Quote, Rejection, RejectionReason
from services.routing.sites import RoutablePrinter, SiteState, Size
from services.routing.slots import after_print, earliest_start

# Swapping a spool on an FDM printer: unload, load, purge and a first-layer check take 15-30 min; we
# promise the slow end. Reserved on the printer like printing.
MATERIAL_CHANGEOVER = timedelta(minutes=30)
# What one hour earlier is worth against courier cost (in the transit model's currency) once the SLA is
# met: a product setting, a parameter of route().
VALUE_OF_HOUR = 1.0


def free_quotes(
    demand: Demand, site: SiteState, distance_km: float, *, value_of_hour: float = VALUE_OF_HOUR
) -> list[Quote]:
    """Each capable printer's best quote as if it had nothing reserved: the batch re-optimiser's options
    (it schedules the queues itself). Empty when the site cannot make the part at all."""
    screened = screen_site(demand, site, distance_km)
    if isinstance(screened, Rejection):
        return []
    plans, _ = screen_printers(demand, site)

    # Ranked as ``route`` ranks: on time by cost plus the value of the hours to the door, else earliest.
    def rank(c: Candidate) -> tuple[int, float, datetime]:
        if c.delivery_at > demand.need_by:
            return (1, 0.0, c.delivery_at)
        score = c.offer.cost + value_of_hour * (c.delivery_at - demand.now).total_seconds() / 3600
        return (0, score, c.delivery_at)

    quotes: list[Quote] = []
    for plan in plans:
        free = replace(plan, printer=replace(plan.printer, reservations=()))
        best = min(site_candidates(demand, site, screened, [free]), key=rank)
        quotes.append(to_quote(demand, site, distance_km, best))
    return quotes


# --- routing -------------------------------------------------------------------------------------------


def _fits(part: Size, volume: Size) -> bool:
    # The part may be rotated: sorted sides against sorted sides is the axis-aligned test for boxes.
    return all(side <= room for side, room in zip(sorted(part), sorted(volume), strict=True))


@dataclass(frozen=True, slots=True)
class _Plan:
    """A printer that can make the part: with which material, and how long it is reserved."""

    printer: RoutablePrinter
    material: str
    changeover: bool
    duration: timedelta


@dataclass(frozen=True, slots=True)
class Offer:
    """A service level the site's courier offers at this distance."""

    level: str
    transit: timedelta
    cost: float


@dataclass(frozen=True, slots=True)
class Candidate:
    """One printer x service level before it becomes a Quote (only the few shown become one)."""

    plan: _Plan
    offer: Offer
    start: datetime
    ready_at: datetime
    pickup_at: datetime
    delivery_at: datetime


def _printer_plan(demand: Demand, printer: RoutablePrinter) -> _Plan | RejectionReason:
    if printer.process != demand.process:
        return RejectionReason.PROCESS_MISMATCH
    loaded = demand.materials & printer.materials_loaded
    materials = loaded or demand.materials & printer.materials_supported
    if not materials:
        return RejectionReason.MATERIAL_UNAVAILABLE
    if not _fits(demand.part_size_mm, printer.build_volume_mm):
        return RejectionReason.PART_TOO_LARGE
    minutes = demand.print_minutes.get(printer.profile_key)
    if minutes is None:
        return RejectionReason.NO_ESTIMATE
    duration = timedelta(minutes=minutes * demand.quantity)
    if not loaded:
        duration += MATERIAL_CHANGEOVER
    return _Plan(printer, min(materials), not loaded, duration)  # min(): deterministic among acceptable ones


def screen_site(demand: Demand, site: SiteState, distance_km: float) -> Rejection | list[Offer]:
    """The site-wide filters: why the site cannot quote, or the service levels it offers at that distance."""
    sid = site.site_id
    if site.status is not SiteStatus.ONLINE:
        return Rejection(sid, None, RejectionReason(site.status.value))
    if site.qualified_revisions is not None and demand.revision_id not in site.qualified_revisions:
        return Rejection(sid, None, RejectionReason.NOT_QUALIFIED)
    if not site.printers:
        return Rejection(sid, None, RejectionReason.NO_PRINTERS)
    offers = [
        Offer(level, rule.duration(distance_km), rule.cost(distance_km))
        for level in demand.service_levels
        if (rule := site.transit.rule(level)) is not None and rule.offers(distance_km)
    ]
    return offers or Rejection(sid, None, RejectionReason.NO_TRANSIT)


def screen_printers(demand: Demand, site: SiteState) -> tuple[list[_Plan], list[Rejection]]:
    """The printer filters: the capable printers, and why each other printer cannot make the part."""
    plans, rejections = [], []
    for printer in site.printers:
        plan = _printer_plan(demand, printer)
        if isinstance(plan, _Plan):
            plans.append(plan)
        else:
            rejections.append(Rejection(site.site_id, printer.printer_id, plan))
    return plans, rejections


def site_candidates(
    demand: Demand, site: SiteState, offers: list[Offer], plans: list[_Plan]
) -> list[Candidate]:
    found: list[Candidate] = []
    for plan in plans:
        start = earliest_start(plan.printer, site.hours, not_before=demand.now, duration=plan.duration)
        ready_at, pickup_at = after_print(site, start + plan.duration)
        found.extend(
            Candidate(plan, offer, start, ready_at, pickup_at, pickup_at + offer.transit) for offer in offers
        )
    return found


def to_quote(demand: Demand, site: SiteState, distance_km: float, candidate: Candidate) -> Quote:
    plan, now = candidate.plan, demand.now
    print_end = candidate.start + plan.duration
    return Quote(
        site_id=site.site_id,
        printer_id=plan.printer.printer_id,
        service_level=candidate.offer.level,
        material=plan.material,
        changeover=plan.changeover,
        start=candidate.start,
        print_end=print_end,
        ready_at=candidate.ready_at,
        pickup_at=candidate.pickup_at,
        delivery_at=candidate.delivery_at,
        distance_km=distance_km,
        cost=candidate.offer.cost,
        on_time=candidate.delivery_at <= demand.need_by,
        breakdown=Breakdown(
            queue_wait=candidate.start - now,
            printing=plan.duration,
            post_processing=candidate.ready_at - print_end,
            courier_wait=candidate.pickup_at - candidate.ready_at,
            transit=candidate.offer.transit,
        ),
    )
