"""Length units a model file's numbers can be in (3MF's unit names), and their size in millimetres."""

from __future__ import annotations

from enum import StrEnum


class Unit(StrEnum):
    """Length units, named as in 3MF's ``unit`` attribute (3MF Core Specification 1.3, 3.4.1)."""

    MICRON = "micron"
    MILLIMETER = "millimeter"
    CENTIMETER = "centimeter"
    INCH = "inch"
    FOOT = "foot"
    METER = "meter"

    @property
    def millimetres(self) -> float:
        """Millimetres per one of this unit (exact by definition: 1 in = 25.4 mm, 1 ft = 12 in)."""
        return _MM[self]


_MM = {
    Unit.MICRON: 0.001,
    Unit.MILLIMETER: 1.0,
    Unit.CENTIMETER: 10.0,
    Unit.INCH: 25.4,
    Unit.FOOT: 304.8,
    Unit.METER: 1000.0,
}
