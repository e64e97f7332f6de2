"""How a routing decision looks from outside: the quote a promise rests on, its alternatives, the earliest
delivery when none meets the deadline. Orders keep their decision as ``RoutingOut`` (a JSON column) and
read it back through it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta

from pydantic import BaseModel

from services.routing.quotes import Quote
from services.routing.snapshot import PrinterInfo


class BreakdownOut(BaseModel):
    """Where the time goes from the order to the door; the parts add up to ``total_seconds``."""

    queue_wait_seconds: float
    print_seconds: float  # includes a material change when the printer needs one
    post_processing_seconds: float
    courier_wait_seconds: float
    transit_seconds: float
    total_seconds: float


class QuoteOut(BaseModel):
    site_id: uuid.UUID
    site_slug: str
    printer_id: uuid.UUID
    printer_key: str
    service_level: str
    material: str
    material_change: bool
    print_start: datetime
    print_end: datetime
    ready_at: datetime
    pickup_at: datetime
    delivery_at: datetime
    distance_km: float
    courier_cost: float
    on_time: bool
    breakdown: BreakdownOut
    lost_because: str | None = None


class EarliestOut(BaseModel):
    delivery_at: datetime
    site_id: uuid.UUID
    site_slug: str
    service_level: str


class RoutingOut(BaseModel):
    """The decision behind a promise: the chosen quote and the best alternatives with why they lost."""

    decided_at: datetime
    quote: QuoteOut
    alternatives: list[QuoteOut]
    sites_evaluated: int


def _seconds(delta: timedelta) -> float:
    return delta.total_seconds()


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
