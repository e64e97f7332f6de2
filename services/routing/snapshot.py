"""The registry as routing sees it: sites and printers as domain states, cached per process.

Routing reads every site for every order, which is too slow to load each time at thousands of sites. A
process keeps a snapshot and reuses it while the registry is unchanged (one cheap query says so) and its
reservations are younger than ``max_age``. A stale snapshot is only ever a first guess: the order service
locks the sites it picks and quotes them again from fresh rows before it reserves anything.
"""

from __future__ import annotations

import asyncio
import logging
import time as monotonic
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, time

from parts_catalog.reports import ORIENTATION_VERSION
from services.factories.models import Printer, Site
from services.factories.repository import SiteRepository
from services.factories.schemas import WEEKDAYS
from services.printing.models import PrinterSpec
from services.routing.calendars import CourierCutoffs, Interval, WeeklyHours
from services.routing.geo import GeoPoint
from services.routing.repository import Reservations, RoutingRepository
from services.routing.search import SiteIndex
from services.routing.sites import RoutablePrinter, SiteState
from services.routing.transit import TransitModel, TransitRule

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PrinterInfo:
    """What an order needs to know about a printer beyond its routing state."""

    printer_id: uuid.UUID
    site_id: uuid.UUID
    site_slug: str
    key: str
    spec: PrinterSpec
    # The printer's preparation digest: its routing profile key and the slice cache's key.
    profile_key: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    index: SiteIndex
    sites: Mapping[str, SiteState]
    printers: Mapping[str, PrinterInfo]
    service_levels: tuple[str, ...]
    loaded_at: float  # time.monotonic()
    version: tuple[int, datetime | None]


def _hours(site: Site) -> WeeklyHours:
    days = tuple(
        tuple(
            (time.fromisoformat(window["open"]), time.fromisoformat(window["close"]))
            for window in site.opening_hours.get(day, [])
        )
        for day in WEEKDAYS
    )
    return WeeklyHours(site.timezone, days)


def _cutoffs(site: Site) -> CourierCutoffs:
    days = tuple(
        (time.fromisoformat(site.courier_cutoffs[day]),) if day in site.courier_cutoffs else ()
        for day in WEEKDAYS
    )
    return CourierCutoffs(site.timezone, days)


def _transit(site: Site) -> TransitModel:
    return TransitModel(
        tuple(
            TransitRule(
                level=level,
                fixed_hours=rule["fixed_hours"],
                speed_kmh=rule["speed_kmh"],
                max_km=rule.get("max_km"),
                fixed_cost=rule.get("cost_fixed", 0.0),
                cost_per_km=rule.get("cost_per_km", 0.0),
            )
            for level, rule in sorted(site.transit.items())
        )
    )


def printer_info(site: Site, printer: Printer) -> PrinterInfo:
    spec = PrinterSpec.model_validate(
        {
            "name": f"{site.slug}/{printer.key}",
            "build_volume": {
                "x_mm": printer.build_x_mm,
                "y_mm": printer.build_y_mm,
                "z_mm": printer.build_z_mm,
            },
            "profile": printer.profile,
            "slicer": printer.slicer,
        }
    )
    return PrinterInfo(
        printer_id=printer.id,
        site_id=site.id,
        site_slug=site.slug,
        key=printer.key,
        spec=spec,
        profile_key=spec.preparation_digest(ORIENTATION_VERSION),
    )


def site_state(
    site: Site, printers: list[Printer], reservations: Reservations, infos: Mapping[str, PrinterInfo]
) -> SiteState | None:
    """The routing state of a site, or None when its calendar cannot be routed (never open, no pickups)."""
    try:
        hours, cutoffs, transit = _hours(site), _cutoffs(site), _transit(site)
    except ValueError as exc:
        log.warning("site %s is not routable: %s", site.slug, exc)
        return None
    states = tuple(
        RoutablePrinter(
            printer_id=str(printer.id),
            process=printer.process.value,
            materials_loaded=frozenset(m.casefold() for m in printer.materials_loaded),
            materials_supported=frozenset(m.casefold() for m in printer.materials_supported),
            build_volume_mm=(printer.build_x_mm, printer.build_y_mm, printer.build_z_mm),
            profile_key=infos[str(printer.id)].profile_key,
            reservations=_disjoint(reservations.get(printer.id, [])),
        )
        for printer in printers
    )
    return SiteState(
        site_id=str(site.id),
        name=site.name,
        location=GeoPoint(site.latitude, site.longitude),
        hours=hours,
        cutoffs=cutoffs,
        transit=transit,
        post_processing_minutes=site.post_processing_minutes,
        status=site.status,
        printers=states,
        qualified_revisions=None if site.qualified_revisions is None else frozenset(site.qualified_revisions),
    )


def _disjoint(intervals: list[Interval]) -> tuple[Interval, ...]:
    # Written under the site lock, reservations never overlap. RoutablePrinter refuses overlapping ones, so
    # one bad row (a manual edit) would stop all routing; merging keeps the printer busy for both instead.
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return tuple(merged)


async def load_sites(
    repo: RoutingRepository, *, now: datetime, site_ids: Collection[uuid.UUID] | None = None
) -> tuple[list[SiteState], dict[str, PrinterInfo]]:
    """Fresh routing states (with reservations) of the given sites, or of all, and their printers."""
    registry = SiteRepository(repo.session)
    sites = await registry.sites(site_ids)
    printers = await registry.printers_of(site_ids)
    reservations = await repo.reservations(ending_after=now, site_ids=site_ids)
    infos = {str(p.id): printer_info(site, p) for site in sites for p in printers.get(site.id, [])}
    states = [
        state
        for site in sites
        if (state := site_state(site, printers.get(site.id, []), reservations, infos)) is not None
    ]
    return states, infos


class SnapshotCache:
    """One process's snapshot (see the module docstring). Safe to share between a process's requests."""

    def __init__(self, *, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        self._snapshot: Snapshot | None = None
        self._lock = asyncio.Lock()

    async def get(self, repo: RoutingRepository, *, now: datetime, fresh: bool = False) -> Snapshot:
        version = await repo.registry_version()
        current = self._snapshot
        if not fresh and current is not None and self._usable(current, version):
            return current
        async with self._lock:  # one reload at a time; the others take its result
            current = self._snapshot
            if not fresh and current is not None and self._usable(current, version):
                return current
            states, infos = await load_sites(repo, now=now)
            levels = sorted({rule.level for state in states for rule in state.transit.rules})
            snapshot = Snapshot(
                index=SiteIndex(states),
                sites={state.site_id: state for state in states},
                printers=infos,
                service_levels=tuple(levels),
                loaded_at=monotonic.monotonic(),
                version=version,
            )
            self._snapshot = snapshot
            return snapshot

    def _usable(self, snapshot: Snapshot, version: tuple[int, datetime | None]) -> bool:
        return snapshot.version == version and monotonic.monotonic() - snapshot.loaded_at < self.max_age_s
