"""What routing answers: quotes with their time breakdown, rejections, and the decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class RejectionReason(StrEnum):
    OFFLINE = "offline"
    PAUSED = "paused"
    NOT_QUALIFIED = "not_qualified"
    NO_TRANSIT = "no_transit"  # no requested service level reaches that far (max_km)
    NO_PRINTERS = "no_printers"
    PROCESS_MISMATCH = "process_mismatch"
    MATERIAL_UNAVAILABLE = "material_unavailable"  # neither loaded nor supported
    PART_TOO_LARGE = "part_too_large"
    NO_ESTIMATE = "no_estimate"  # no print minutes for the printer's profile
    SLA_MISSED = "sla_missed"  # the site's best delivery is after need_by


class LostBecause(StrEnum):
    SLA_MISSED = "sla_missed"
    LATER_DELIVERY = "later_delivery"
    HIGHER_COST = "higher_cost"
    TIE_BREAK = "tie_break"  # same delivery and cost: ids decided


@dataclass(frozen=True, slots=True)
class Rejection:
    site_id: str
    printer_id: str | None  # None: the whole site
    reason: RejectionReason
    delivery_at: datetime | None = None  # set for sla_missed


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Where the time goes; the five parts add up exactly to ``delivery_at - now``."""

    queue_wait: timedelta
    printing: timedelta  # includes MATERIAL_CHANGEOVER when the quote needs one
    post_processing: timedelta
    courier_wait: timedelta
    transit: timedelta

    @property
    def total(self) -> timedelta:
        return self.queue_wait + self.printing + self.post_processing + self.courier_wait + self.transit


@dataclass(frozen=True, slots=True)
class Quote:
    """One way to make and ship the demand. Reserve ``[start, print_end)`` on ``printer_id``."""

    site_id: str
    printer_id: str
    service_level: str
    material: str
    changeover: bool
    start: datetime
    print_end: datetime
    ready_at: datetime
    pickup_at: datetime
    delivery_at: datetime
    distance_km: float
    cost: float
    on_time: bool
    breakdown: Breakdown
    lost_because: LostBecause | None = None  # set on alternatives


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    best: Quote | None  # None: nothing meets the SLA and late promises were not accepted
    alternatives: list[Quote]  # the next best sites, each with lost_because
    rejections: list[Rejection]  # nearest first, at most REJECTION_LIMIT
    earliest: Quote | None  # the earliest delivery found, even if late (see ``services.routing.search``)
    sites_evaluated: int  # looked at (filters and bound)
    sites_quoted: int  # whose printer slots were searched
