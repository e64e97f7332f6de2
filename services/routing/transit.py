"""A site's courier offer: the service levels, how long each takes and what it costs by distance."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class TransitRule:
    """One service level: ``fixed_hours + distance / speed_kmh``, offered up to ``max_km`` (None: any)."""

    level: str
    fixed_hours: float
    speed_kmh: float
    max_km: float | None = None
    fixed_cost: float = 0.0
    cost_per_km: float = 0.0

    def __post_init__(self) -> None:
        if self.fixed_hours < 0 or self.speed_kmh <= 0 or self.fixed_cost < 0 or self.cost_per_km < 0:
            raise ValueError(f"transit rule {self.level!r}: negative hours or cost, or speed <= 0")

    def offers(self, distance_km: float) -> bool:
        return self.max_km is None or distance_km <= self.max_km

    def duration(self, distance_km: float) -> timedelta:
        return timedelta(hours=self.fixed_hours + distance_km / self.speed_kmh)

    def cost(self, distance_km: float) -> float:
        return self.fixed_cost + self.cost_per_km * distance_km


@dataclass(frozen=True, slots=True)
class TransitModel:
    """A site's courier offer: one rule per service level."""

    rules: tuple[TransitRule, ...]
    _by_level: Mapping[str, TransitRule] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_level = {rule.level: rule for rule in self.rules}
        if len(by_level) != len(self.rules):
            raise ValueError("one transit rule per service level")
        object.__setattr__(self, "_by_level", MappingProxyType(by_level))

    def rule(self, level: str) -> TransitRule | None:
        return self._by_level.get(level)

    def transit(self, distance_km: float, level: str) -> timedelta | None:
        """Door-to-door time after pickup; None when the level is not offered at that distance."""
        rule = self._by_level.get(level)
        return rule.duration(distance_km) if rule is not None and rule.offers(distance_km) else None

    def cost(self, distance_km: float, level: str) -> float | None:
        rule = self._by_level.get(level)
        return rule.cost(distance_km) if rule is not None and rule.offers(distance_km) else None
