"""The microfactory registry (operators): sites, their hours, shipping and printers."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from services.api.deps import Admin, Sites
from services.api.endpoints import error_responses
from services.api.schemas import SiteOut
from services.factories.schemas import SiteIn, SiteStatusIn

router = APIRouter(prefix="/sites", tags=["sites"])


@router.post("", status_code=201, responses=error_responses(400, 409, 422))
async def create_site(body: SiteIn, _: Admin, sites: Sites) -> SiteOut:
    """Register a microfactory with its location, time zone, opening hours, courier cut-offs, transit model,
    post-processing time and printers."""
    return SiteOut.of(await sites.create_site(body))


@router.get("", responses=error_responses())
async def list_sites(_: Admin, sites: Sites) -> list[SiteOut]:
    return [SiteOut.of(view) for view in await sites.list_sites()]


@router.get("/{site_id}", responses=error_responses(404, 422))
async def get_site(site_id: uuid.UUID, _: Admin, sites: Sites) -> SiteOut:
    return SiteOut.of(await sites.view(site_id))


@router.put("/{site_id}", responses=error_responses(400, 404, 409, 422))
async def replace_site(site_id: uuid.UUID, body: SiteIn, _: Admin, sites: Sites) -> SiteOut:
    """Replace the site's whole definition (printers missing from the body are removed)."""
    return SiteOut.of(await sites.replace_site(site_id, body))


@router.patch("/{site_id}/status", responses=error_responses(400, 404, 422))
async def set_site_status(site_id: uuid.UUID, body: SiteStatusIn, _: Admin, sites: Sites) -> SiteOut:
    """Take a site online, pause it (no new orders) or mark it offline."""
    return SiteOut.of(await sites.set_status(site_id, body.status))
