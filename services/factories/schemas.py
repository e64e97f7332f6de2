"""A microfactory as operators describe it: where it is, when it works, what it prints, how it ships."""

from __future__ import annotations

import itertools
import zoneinfo
from datetime import time
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from parts_catalog.models import Process
from parts_catalog.schemas import Material, Name
from services.accounts.models import Slug
from services.addresses import Address
from slicer_adapters.models import BuildVolume, PrintProfile

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ServiceLevel = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,30}$")]
SlicerChoice = Literal["auto", "prusaslicer", "curaengine", "estimator"]


# Who ships a site's parts (``services.couriers.registry`` has an adapter for each).
CourierName = Literal["local", "karrio"]


class SiteStatus(StrEnum):
    ONLINE = "online"  # takes new orders
    PAUSED = "paused"  # finishes what it has, takes nothing new
    OFFLINE = "offline"  # unreachable or closed: its unstarted orders are routed elsewhere


class OpeningWindow(BaseModel):
    """Local opening and closing time on one day; closing comes after opening, and a closing time of 00:00
    is midnight at the end of the day (``00:00``-``00:00`` is open all day)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    open: time
    close: time

    @model_validator(mode="after")
    def _ordered(self) -> OpeningWindow:
        if self.close <= self.open and self.close != time(0):
            raise ValueError("close must be after open")
        return self


def _weekdays_hours() -> dict[Weekday, list[OpeningWindow]]:
    workday = [OpeningWindow(open=time(8), close=time(17))]
    return {day: list(workday) for day in WEEKDAYS[:5]}


def _weekday_cutoffs() -> dict[Weekday, time]:
    return dict.fromkeys(WEEKDAYS[:5], time(16))


class TransitLevel(BaseModel):
    """How long and how much a courier service level takes: ``fixed_hours + km / speed_kmh``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fixed_hours: float = Field(strict=True, ge=0, le=240)
    speed_kmh: float = Field(strict=True, gt=0, le=2000)
    max_km: float | None = Field(default=None, strict=True, gt=0, le=40_000)
    cost_fixed: float = Field(default=0.0, strict=True, ge=0)
    cost_per_km: float = Field(default=0.0, strict=True, ge=0)


def _default_transit() -> dict[str, TransitLevel]:
    # A same-day road courier within a few hundred km, and a next-day parcel network beyond.
    return {
        "express": TransitLevel(
            fixed_hours=1.0, speed_kmh=70.0, max_km=600.0, cost_fixed=25.0, cost_per_km=1.2
        ),
        "standard": TransitLevel(fixed_hours=18.0, speed_kmh=60.0, cost_fixed=9.0, cost_per_km=0.05),
    }


class PrinterIn(BaseModel):
    """One printer of a site. ``key`` names it within the site (``mk4-01``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: Slug
    model: Name
    process: Process = Process.FDM
    build_volume: BuildVolume
    nozzle_mm: float = Field(default=0.4, strict=True, gt=0.05, le=2.0)
    materials_supported: list[Material] = Field(min_length=1, max_length=50)
    materials_loaded: list[Material] = Field(default_factory=list, max_length=20)
    profile: PrintProfile = PrintProfile()
    slicer: SlicerChoice = "auto"

    @model_validator(mode="after")
    def _loaded_are_supported(self) -> PrinterIn:
        supported = {m.casefold() for m in self.materials_supported}
        unknown = [m for m in self.materials_loaded if m.casefold() not in supported]
        if unknown:
            raise ValueError(f"loaded materials the printer does not support: {unknown}")
        return self


class SiteIn(BaseModel):
    """A site's whole definition; PUT replaces it, and a CLI import upserts it by slug."""

    model_config = ConfigDict(extra="forbid")

    slug: Slug
    name: Name
    latitude: float = Field(strict=True, ge=-90, le=90)
    longitude: float = Field(strict=True, ge=-180, le=180)
    timezone: str = Field(min_length=1, max_length=64, description="IANA time zone, e.g. Europe/Berlin")
    opening_hours: dict[Weekday, list[OpeningWindow]] = Field(default_factory=_weekdays_hours)
    courier_cutoffs: dict[Weekday, time] = Field(default_factory=_weekday_cutoffs)
    transit: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,30}$")], TransitLevel] = (
        Field(default_factory=_default_transit, min_length=1, max_length=10)
    )
    post_processing_minutes: int = Field(default=30, strict=True, ge=0, le=7 * 24 * 60)
    address: Address | None = Field(
        default=None, description="Where couriers pick parts up; couriers other than `local` need it"
    )
    courier: CourierName = Field(
        default="local", description="Who ships this site's parts: `local` (built in) or `karrio`"
    )
    status: SiteStatus = SiteStatus.ONLINE
    qualified_revisions: list[str] | None = Field(
        default=None,
        max_length=10_000,
        description="When set, only these part revisions (ids) may be routed here",
    )
    printers: list[PrinterIn] = Field(default_factory=list, max_length=500)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("opening_hours")
    @classmethod
    def _no_overlaps(cls, value: dict[Weekday, list[OpeningWindow]]) -> dict[Weekday, list[OpeningWindow]]:
        for day, intervals in value.items():
            ordered = sorted(intervals, key=lambda i: i.open)
            if any(a.close > b.open or a.close == time(0) for a, b in itertools.pairwise(ordered)):
                raise ValueError(f"overlapping opening hours on {day}")
            value[day] = ordered
        return value

    @field_validator("printers")
    @classmethod
    def _unique_keys(cls, value: list[PrinterIn]) -> list[PrinterIn]:
        keys = [p.key for p in value]
        if len(keys) != len(set(keys)):
            raise ValueError("printer keys must be unique within a site")
        return value


class SiteStatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: SiteStatus
