"""The technicians' stage: searching the catalog, and what another organization's technician sees of it."""

from __future__ import annotations

from collections import Counter

import httpx

from services.demo.meshes import DEMO_PARTS
from services.demo.support import DemoFailed, Say, ok


async def search_catalog(tech: httpx.AsyncClient) -> dict[str, int]:
    """The number of parts a few typical searches find, by search."""
    shared = Counter(m for p in DEMO_PARTS for m in p.equipment_models).most_common(1)[0][0]
    queries: dict[str, dict[str, str | int]] = {
        "by_part_number": {"part_number": DEMO_PARTS[0].part_number},
        "by_text": {"q": "gear"},
        f"by_equipment:{shared}": {"equipment_model": shared},
        "all": {"limit": 100},
    }
    return {
        name: len(ok(await tech.get("/parts", params=params), 200)["items"])
        for name, params in queries.items()
    }


async def check_tenancy(tech: httpx.AsyncClient, outsider: httpx.AsyncClient, say: Say) -> tuple[int, int]:
    """What another organization's technician sees of the parts: (listed, status of a direct GET)."""
    outsider_sees = len(ok(await outsider.get("/parts", params={"limit": 100}), 200)["items"])
    first = ok(await tech.get("/parts", params={"part_number": DEMO_PARTS[0].part_number}), 200)["items"][0]
    outsider_get = (await outsider.get(f"/parts/{first['id']}")).status_code
    say(f"A Southwind technician sees {outsider_sees} of them; asks for one directly: {outsider_get}")
    if outsider_sees or outsider_get != 404:
        raise DemoFailed("tenancy leak: another organization can see Northwind's parts")
    return outsider_sees, outsider_get
