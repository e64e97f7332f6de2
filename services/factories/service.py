"""The microfactory registry: operators describe sites and printers; routing reads them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from parts_catalog.sqltypes import utcnow
from services.errors import Conflict, NotFound
from services.factories.models import Printer, Site
from services.factories.repository import SiteRepository
from services.factories.schemas import PrinterIn, SiteIn, SiteStatus
from services.queue import enqueue_after_commit

REROUTE_SITE = "reroute_site"


def reroute_site_job_id(site_id: uuid.UUID) -> str:
    return f"{REROUTE_SITE}:{site_id}"


def enqueue_site_reroute(session: AsyncSession, site_id: uuid.UUID) -> None:
    """After the commit, move the site's unstarted orders elsewhere (``workers.jobs.orders.reroute_site``)."""
    enqueue_after_commit(session, REROUTE_SITE, str(site_id), job_id=reroute_site_job_id(site_id))


class ReservedPrinters(Protocol):
    """Keys of a site's printers, other than ``keep_keys``, that hold a reserved slot (routing knows)."""

    async def __call__(self, site_id: uuid.UUID, keep_keys: Iterable[str]) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class SiteView:
    site: Site
    printers: list[Printer]


@dataclass(frozen=True, slots=True)
class ImportResult:
    created: list[str]
    updated: list[str]


def _apply(site: Site, spec: SiteIn) -> None:
    site.name = spec.name
    site.latitude, site.longitude, site.timezone = spec.latitude, spec.longitude, spec.timezone
    site.opening_hours = {
        day: [interval.model_dump(mode="json") for interval in intervals]
        for day, intervals in spec.opening_hours.items()
    }
    site.courier_cutoffs = {day: cutoff.isoformat() for day, cutoff in spec.courier_cutoffs.items()}
    site.transit = {level: rule.model_dump(mode="json") for level, rule in spec.transit.items()}
    site.post_processing_minutes = spec.post_processing_minutes
    site.address = spec.address.model_dump(mode="json") if spec.address else {}
    site.courier = spec.courier
    site.status = spec.status
    site.qualified_revisions = spec.qualified_revisions
    site.updated_at = utcnow()


def _printer_fields(spec: PrinterIn) -> dict[str, Any]:
    volume = spec.build_volume
    return {
        "model": spec.model,
        "process": spec.process,
        "build_x_mm": volume.x_mm,
        "build_y_mm": volume.y_mm,
        "build_z_mm": volume.z_mm,
        "nozzle_mm": spec.nozzle_mm,
        "materials_supported": list(spec.materials_supported),
        "materials_loaded": list(spec.materials_loaded),
        "profile": spec.profile.model_dump(mode="json"),
        "slicer": spec.slicer,
    }


class SiteRegistry:
    def __init__(self, session: AsyncSession, *, reserved_printers: ReservedPrinters) -> None:
        self.session = session
        self.repo = SiteRepository(session)
        self.reserved_printers = reserved_printers

    async def create_site(self, spec: SiteIn) -> SiteView:
        if await self.repo.site_by_slug(spec.slug) is not None:
            raise Conflict(f"{spec.slug!r} is taken", code="slug_taken", details={"slug": spec.slug})
        site = Site(slug=spec.slug, name=spec.name)
        _apply(site, spec)
        self.session.add(site)
        try:
            await self.session.flush()
        except IntegrityError as exc:
            raise Conflict(f"{spec.slug!r} is taken", code="slug_taken", details={"slug": spec.slug}) from exc
        return await self._replace_printers(site, spec)

    async def replace_site(self, site_id: uuid.UUID, spec: SiteIn) -> SiteView:
        """Replace a site's whole definition; its slug is its identity and cannot change."""
        site = await self._site(site_id)
        if spec.slug != site.slug:
            raise Conflict("a site's slug cannot change", code="slug_immutable", details={"slug": site.slug})
        self._status_changing(site, spec.status)
        _apply(site, spec)
        return await self._replace_printers(site, spec)

    async def set_status(self, site_id: uuid.UUID, status: SiteStatus) -> SiteView:
        site = await self._site(site_id)
        self._status_changing(site, status)
        site.status = status
        site.updated_at = utcnow()
        await self.session.flush()
        return await self.view(site_id)

    async def view(self, site_id: uuid.UUID) -> SiteView:
        site = await self._site(site_id)
        return SiteView(site=site, printers=(await self.repo.printers_of([site.id])).get(site.id, []))

    async def list_sites(self) -> list[SiteView]:
        sites = await self.repo.sites()
        printers = await self.repo.printers_of(s.id for s in sites)
        return [SiteView(site=s, printers=printers.get(s.id, [])) for s in sites]

    async def import_sites(self, specs: Sequence[SiteIn]) -> ImportResult:
        """Create or replace each site by slug, all in the caller's one transaction."""
        created, updated = [], []
        for spec in specs:
            existing = await self.repo.site_by_slug(spec.slug)
            if existing is None:
                await self.create_site(spec)
                created.append(spec.slug)
            else:
                await self.replace_site(existing.id, spec)
                updated.append(spec.slug)
        return ImportResult(created=created, updated=updated)

    def _status_changing(self, site: Site, status: SiteStatus) -> None:
        # An offline site's unstarted orders go elsewhere; a paused one finishes what it has.
        if status is SiteStatus.OFFLINE and site.status is not SiteStatus.OFFLINE:
            enqueue_site_reroute(self.session, site.id)

    async def _site(self, site_id: uuid.UUID) -> Site:
        site = await self.repo.site(site_id)
        if site is None:
            raise NotFound("no such site", code="site_not_found", details={"site_id": str(site_id)})
        return site

    async def _replace_printers(self, site: Site, spec: SiteIn) -> SiteView:
        keep = [p.key for p in spec.printers]
        busy = await self.reserved_printers(site.id, keep)
        if busy:
            raise Conflict(
                "these printers hold orders that have not started; re-route or cancel them first "
                "(or set the site offline, which re-routes them)",
                code="printer_has_orders",
                details={"printers": busy},
            )
        await self.repo.remove_printers(site.id, keep)
        existing = {p.key: p for p in (await self.repo.printers_of([site.id])).get(site.id, [])}
        for printer_spec in spec.printers:
            fields = _printer_fields(printer_spec)
            printer = existing.get(printer_spec.key)
            if printer is None:
                self.session.add(Printer(site_id=site.id, key=printer_spec.key, **fields))
            else:
                printer.sqlmodel_update(fields)
        await self.session.flush()
        return await self.view(site.id)
