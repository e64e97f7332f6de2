"""Sites and printers as routing sees them: location, calendars, courier offer, status and bookings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from services.factories.schemas import SiteStatus
from services.routing.calendars import CourierCutoffs, Interval, WeeklyHours, require_aware
from services.routing.geo import GeoPoint
from services.routing.transit import TransitModel

Size: TypeAlias = tuple[float, float, float]  # mm


def check_size(name: str, size: Size) -> None:
    if len(size) != 3 or not all(side > 0 for side in size):
        raise ValueError(f"{name} must be three positive lengths in mm, got {size!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutablePrinter:
    """A printer and its busy intervals: sorted, non-overlapping, half-open ``[start, end)``."""

    printer_id: str
    process: str
    materials_loaded: frozenset[str]
    materials_supported: frozenset[str]
    build_volume_mm: Size
    profile_key: str
    reservations: tuple[Interval, ...] = ()

    def __post_init__(self) -> None:
        check_size("build_volume_mm", self.build_volume_mm)
        if not self.materials_loaded <= self.materials_supported:
            raise ValueError(f"printer {self.printer_id}: a loaded material must be supported")
        previous_end: datetime | None = None
        for start, end in self.reservations:
            require_aware("reservation", start)
            require_aware("reservation", end)
            if end <= start or (previous_end is not None and start < previous_end):
                raise ValueError(f"printer {self.printer_id}: reservations must be sorted and disjoint")
            previous_end = end


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteState:
    """A microfactory as routing sees it. ``qualified_revisions`` None: no qualification gate."""

    site_id: str
    name: str
    location: GeoPoint
    hours: WeeklyHours
    cutoffs: CourierCutoffs
    transit: TransitModel
    post_processing_minutes: int
    status: SiteStatus
    printers: tuple[RoutablePrinter, ...]
    qualified_revisions: frozenset[str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", SiteStatus(self.status))
        if self.post_processing_minutes < 0:
            raise ValueError(f"site {self.site_id}: post_processing_minutes must be >= 0")
        if len({printer.printer_id for printer in self.printers}) != len(self.printers):
            raise ValueError(f"site {self.site_id}: printer ids must be unique")
