"""The microfactory stage: the demo sites registered (or brought back to their definition), after freeing
the printer slots an earlier run's orders still hold."""

from __future__ import annotations

from typing import Any

import httpx

from services.demo.scenario import (
    ALWAYS_OPEN,
    DAILY_PICKUP,
    DEMO_PRINTER,
    DEMO_SITES,
    HAMBURG_DEPOT,
    DemoSite,
    km,
)
from services.demo.support import Say, ok, span
from services.orders.states import UNSTARTED


def _site_body(site: DemoSite) -> dict[str, Any]:
    return {
        "slug": site.slug,
        "name": site.name,
        "latitude": site.at[0],
        "longitude": site.at[1],
        "timezone": "Europe/Berlin",
        "opening_hours": ALWAYS_OPEN,
        "courier_cutoffs": DAILY_PICKUP,
        "post_processing_minutes": site.post_processing_minutes,
        "printers": [
            {
                "key": "mk4-01",
                "model": "i3 MK4-class",
                # The demo printer's bed and profile: the orders' print jobs then come from the slice cache.
                "build_volume": DEMO_PRINTER["build_volume"],
                "profile": DEMO_PRINTER["profile"],
                "materials_supported": ["PLA", "PETG", "ASA"],
                "materials_loaded": ["PETG"],
            }
        ],
    }


async def _ensure_sites(admin: httpx.AsyncClient) -> list[tuple[DemoSite, str]]:
    """Register the demo sites, or bring them back to their demo definition when a run registered them."""
    existing = {s["slug"]: s["id"] for s in ok(await admin.get("/sites"), 200)}
    done = []
    for site in DEMO_SITES:
        if site.slug in existing:
            ok(await admin.put(f"/sites/{existing[site.slug]}", json=_site_body(site)), 200)
            done.append((site, "updated"))
        else:
            ok(await admin.post("/sites", json=_site_body(site)), 201)
            done.append((site, "registered"))
    return done


def _site_line(site: DemoSite, action: str) -> str:
    far = km(site.at, HAMBURG_DEPOT.at)
    qa = span(site.post_processing_minutes * 60)
    return f"  {site.slug:<15} {site.name:<30} {far:4.0f} km from Hamburg  post-processing {qa:>7}  {action}"


async def _cancel_open_orders(tech: httpx.AsyncClient) -> int:
    """Cancel what an earlier run left holding printer slots, so that this run routes as the first did."""
    cancelled = 0
    for status in sorted(UNSTARTED):
        found = ok(await tech.get("/orders", params={"status": status, "limit": 200}), 200)["items"]
        for order in found:
            body = {"reason": "spareflow demo re-run"}
            ok(await tech.post(f"/orders/{order['id']}/cancel", json=body), 200)
            cancelled += 1
    return cancelled


async def set_up_sites(admin: httpx.AsyncClient, tech: httpx.AsyncClient, say: Say) -> int:
    """Register the demo sites; the number of an earlier run's open orders cancelled first."""
    say("\nMicrofactories (open around the clock, courier pickup daily at 18:00 Berlin time):")
    # First, as sites cannot drop printers that hold unstarted orders.
    cancelled = await _cancel_open_orders(tech)
    if cancelled:
        say(f"  (cancelled {cancelled} open orders of an earlier run: their printer slots are free)")
    for site, action in await _ensure_sites(admin):
        say(_site_line(site, action))
    return cancelled
