"""The ordering stage: three orders for the first demo part that show SLA routing: a normal one, one its
deadline sends past the nearest site, and one no site can deliver in time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.demo.meshes import DEMO_PARTS
from services.demo.scenario import HAMBURG_DEPOT, NORDERSTEDT_DEPOT, DemoDepot, DemoSite, km, nearest
from services.demo.support import DemoFailed, Say, ok, span, until, when

_BREAKDOWN = (
    ("queue", "queue_wait_seconds"),
    ("print", "print_seconds"),
    ("post-processing", "post_processing_seconds"),
    ("courier wait", "courier_wait_seconds"),
    ("transit", "transit_seconds"),
)


def _order_body(part_number: str, depot: DemoDepot, **deadline: str) -> dict[str, Any]:
    return {
        "part_number": part_number,
        "quantity": 1,
        "destination": {
            "latitude": depot.at[0],
            "longitude": depot.at[1],
            "address": {
                "lines": [depot.street],
                "city": depot.city,
                "postal_code": depot.postal_code,
                "country": "DE",
            },
            "contact": {"name": "Ada Field", "phone": "+49 40 123456", "email": "ada@example.com"},
        },
        **deadline,
    }


async def _place(tech: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await tech.post("/orders", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})


def _hours_ahead(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def _order_lines(order: dict[str, Any]) -> list[str]:
    quote = order["routing"]["quote"]
    b = quote["breakdown"]
    timing = " + ".join(f"{name} {span(b[key])}" for name, key in _BREAKDOWN)
    lost = ", ".join(
        f"{a['site_slug']} {a['lost_because']} ({when(a['delivery_at'], '%a %H:%M')})"
        for a in order["routing"]["alternatives"]
    )
    return [
        f"    -> {quote['site_slug']}/{quote['printer_key']}, {quote['distance_km']:.0f} km by "
        f"{quote['service_level']} courier: delivery {when(quote['delivery_at'])}, "
        f"{'on time' if quote['on_time'] else 'late'}; {order['status']}",
        f"       {timing} = {span(b['total_seconds'])}",
        f"       lost: {lost or 'no other site'}",
    ]


def _order_summary(order: dict[str, Any], nearest_site: DemoSite) -> dict[str, Any]:
    quote = order["routing"]["quote"]
    return {
        "order_id": order["id"],
        "site": quote["site_slug"],
        "printer": quote["printer_key"],
        "nearest_site": nearest_site.slug,
        "promised_delivery_at": order["promised_delivery_at"],
        "on_time": quote["on_time"],
        "status": order["status"],
        "lost_because": {a["site_slug"]: a["lost_because"] for a in order["routing"]["alternatives"]},
    }


async def _routed(
    tech: httpx.AsyncClient, say: Say, key: str, label: str, depot: DemoDepot, deadline: dict[str, str]
) -> dict[str, Any]:
    """Place one order and wait until it is routed and its print job prepared; its summary."""
    part = DEMO_PARTS[0]
    nearest_site = nearest(depot)
    where = f"nearest site: {nearest_site.slug}, {km(nearest_site.at, depot.at):.0f} km"
    say(f"  {key}: {part.part_number} to {depot.city}, {label} ({where})")
    created = ok(await _place(tech, _order_body(part.part_number, depot, **deadline)), 201)
    order = await until(
        tech, f"/orders/{created['id']}", lambda o: o["status"] not in ("routed", "preparing")
    )
    for line in _order_lines(order):
        say(line)
    return _order_summary(order, nearest_site)


async def _unachievable(tech: httpx.AsyncClient, say: Say) -> dict[str, Any]:
    """An order due in an hour: refused with the earliest delivery any site could make."""
    part = DEMO_PARTS[0]
    say(f"  unachievable: {part.part_number} to {HAMBURG_DEPOT.city}, needed in 1 h")
    refused = await _place(tech, _order_body(part.part_number, HAMBURG_DEPOT, need_by=_hours_ahead(1)))
    if refused.status_code != 422:
        raise DemoFailed(f"an order due in 1 h was not refused: {refused.status_code} {refused.text}")
    error = refused.json()["error"]
    earliest = error["details"]["earliest"]
    say(
        f"    -> 422 {error['code']}: earliest {when(earliest['delivery_at'])} from "
        f"{earliest['site_slug']} ({earliest['service_level']}); accept_late=true would take it"
    )
    return {
        "code": error["code"],
        "earliest_site": earliest["site_slug"],
        "earliest_delivery_at": earliest["delivery_at"],
        "service_level": earliest["service_level"],
    }


async def place_orders(tech: httpx.AsyncClient, say: Say) -> dict[str, Any]:
    """Three orders for the first demo part: normal, forced past the nearest site by its deadline, and
    impossible in time. Waits until the placed ones' print jobs are prepared (from the slice cache)."""
    say("\nOrders as a Northwind technician (SLA routing):")
    forced_by = _hours_ahead(30)  # from the start of the stage, not from when the normal order is routed
    placed = {
        "normal": await _routed(tech, say, "normal", "SLA 48 h", HAMBURG_DEPOT, {"sla": "48h"}),
        "sla_forced": await _routed(
            tech, say, "sla_forced", "needed in 30 h", NORDERSTEDT_DEPOT, {"need_by": forced_by}
        ),
    }
    return {**placed, "unachievable": await _unachievable(tech, say)}
