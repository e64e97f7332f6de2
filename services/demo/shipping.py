"""The shipping stage: the worker books the built-in courier for each printed order and applies its signed
tracking webhooks; and a forged webhook, refused."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from services.couriers.registry import LOCAL_PARTNER
from services.demo.support import DemoFailed, Say, ok, until, when
from services.signing import new_secret, sign


def _shipment_line(key: str, order: dict[str, Any], shipment: dict[str, Any], label: bytes) -> str:
    return (
        f"  {key}: {shipment['courier']} {shipment['service']} {shipment['tracking_number']} "
        f"({len(label)} B label): picked up {when(shipment['picked_up_at'], '%H:%M:%S')}, "
        f"delivered {when(shipment['delivered_at'], '%H:%M:%S')} UTC; "
        f"{len(shipment['events'])} tracking webhooks; order {order['status']}"
    )


async def ship_orders(
    tech: httpx.AsyncClient, printed: dict[str, Any], orders: dict[str, Any], say: Say
) -> dict[str, Any]:
    """Wait until every printed order is delivered; the worker books its courier and applies the courier's
    webhooks on its own."""
    say(
        "\nShipping (the built-in courier, four hours a second; its tracking webhooks are signed and "
        "posted to the API):"
    )
    shipped = {}
    for key in printed:
        order_id = orders[key]["order_id"]
        order = await until(tech, f"/orders/{order_id}", lambda o: o["status"] == "delivered")
        shipment = ok(await tech.get(f"/orders/{order_id}/shipment"), 200)
        label = await tech.get(f"/orders/{order_id}/shipment/label")
        if label.status_code != 200 or not label.content.startswith(b"%PDF"):
            raise DemoFailed(f"no shipping label for {key}: {label.status_code}")
        say(_shipment_line(key, order, shipment, label.content))
        shipped[key] = {
            "courier": shipment["courier"],
            "tracking_number": shipment["tracking_number"],
            "tracking_events": [e["status"] for e in shipment["events"]],
            "status": order["status"],
        }
    return shipped


async def forged_webhook(client: httpx.AsyncClient, say: Say) -> str:
    """A tracking webhook signed with a key that is not the courier's: refused, stored nowhere, counted."""
    body = json.dumps({"tracking_number": "SFL-FORGED", "status": "delivered"}).encode()
    headers = sign([new_secret()], f"msg_{uuid.uuid4().hex}", datetime.now(UTC), body)
    answer = await client.post(f"/webhooks/partners/{LOCAL_PARTNER}", content=body, headers=headers)
    code = answer.json()["error"]["code"] if answer.status_code >= 400 else "accepted"
    say(f"  a tracking webhook signed with the wrong key: {answer.status_code} {code}")
    if answer.status_code != 401:
        raise DemoFailed(f"a forged webhook was not refused: {answer.status_code}")
    return str(code)
