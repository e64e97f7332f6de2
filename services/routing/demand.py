"""What a routing decision is asked for: a part, how many, where to and by when."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

from services.routing.calendars import require_aware
from services.routing.geo import GeoPoint
from services.routing.sites import Size, check_size


@dataclass(frozen=True, slots=True, kw_only=True)
class Demand:
    """What to make, how many, where to and by when.

    ``materials``: any of them is acceptable. ``part_size_mm``: the bounding box; the part may be rotated.
    ``print_minutes``: minutes for ONE copy per printer ``profile_key``; a printer whose key is missing
    cannot be estimated and is skipped. Datetimes are stored in UTC.
    """

    revision_id: str
    process: str
    materials: frozenset[str]
    part_size_mm: Size
    quantity: int
    destination: GeoPoint
    need_by: datetime
    now: datetime
    service_levels: tuple[str, ...] = ("express", "standard")
    print_minutes: Mapping[str, float]

    def __post_init__(self) -> None:
        require_aware("need_by", self.need_by)
        require_aware("now", self.now)
        check_size("part_size_mm", self.part_size_mm)
        if self.quantity < 1:
            raise ValueError(f"quantity must be >= 1, got {self.quantity}")
        if not self.materials or not self.service_levels:
            raise ValueError("a demand needs at least one material and one service level")
        if not all(0 < minutes < math.inf for minutes in self.print_minutes.values()):
            raise ValueError("print minutes must be positive and finite")
        object.__setattr__(self, "need_by", self.need_by.astimezone(UTC))
        object.__setattr__(self, "now", self.now.astimezone(UTC))
        object.__setattr__(self, "print_minutes", MappingProxyType(dict(self.print_minutes)))
