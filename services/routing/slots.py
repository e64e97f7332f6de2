"""Printer slots: when a print can start on a printer, and when it is ready and picked up after it."""

from __future__ import annotations

import bisect
from datetime import datetime, timedelta

from services.routing.calendars import WeeklyHours
from services.routing.sites import RoutablePrinter, SiteState


def earliest_start(
    printer: RoutablePrinter, hours: WeeklyHours, *, not_before: datetime, duration: timedelta
) -> datetime:
    """The earliest ``t >= not_before`` with the site open at ``t`` and ``[t, t + duration)`` free.

    Returns:
        An aware UTC datetime. Printing may run through closed hours; only its start needs staff.
    """
    reservations = printer.reservations
    start = hours.next_open(not_before)
    # The first reservation that ends after start; earlier ones cannot collide.
    i = bisect.bisect_right(reservations, start, key=lambda busy: busy[1])
    while i < len(reservations):
        busy_start, busy_end = reservations[i]
        if busy_end > start:
            if busy_start >= start + duration:
                break  # the gap before this reservation is long enough
            # Collides: the next candidate is the first open instant after it (which may pass others).
            start = hours.next_open(busy_end)
        i += 1
    return start


def after_print(site: SiteState, print_end: datetime) -> tuple[datetime, datetime]:
    """When a print that ends at ``print_end`` is ready (post-processing in opening hours) and picked up."""
    ready_at = site.hours.add_open_minutes(print_end, site.post_processing_minutes)
    return ready_at, site.cutoffs.next_pickup(ready_at)
