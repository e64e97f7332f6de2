"""An order's life after routing: preparation moves it along, a site going offline or a failed job moves it
elsewhere (the SLA watchdog's moves: ``test_sla_watchdog``)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from services.config import Settings
from services.fulfilment.follow import follow
from tests.builders import (
    BREMEN,
    HAMBURG,
    bearer,
    make_shop,
    order_body,
    place_order,
)
from tests.workers import run_worker_until_idle


@pytest.fixture
async def shop(client: httpx.AsyncClient, settings: Settings) -> dict[str, Any]:
    return await make_shop(client, settings, {"hamburg": HAMBURG, "bremen": BREMEN})


async def _order(client: httpx.AsyncClient, shop: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    response = await place_order(client, shop["tech"], order_body("BR-1", HAMBURG, **overrides))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _get(client: httpx.AsyncClient, shop: dict[str, Any], order_id: str) -> dict[str, Any]:
    return dict((await client.get(f"/orders/{order_id}", headers=bearer(shop["tech"]))).json())


async def _statuses(client: httpx.AsyncClient, shop: dict[str, Any], order_id: str) -> list[str]:
    events = (await client.get(f"/orders/{order_id}/events", headers=bearer(shop["tech"]))).json()
    return [e["to_status"] for e in events]


async def test_preparation_moves_the_order_to_ready_for_print(
    client: httpx.AsyncClient, shop: dict[str, Any], settings: Settings
) -> None:
    order = await _order(client, shop)
    await run_worker_until_idle(settings)
    assert (await _get(client, shop, order["id"]))["status"] == "ready_for_print"
    assert await _statuses(client, shop, order["id"]) == [
        "received",
        "routed",
        "preparing",
        "ready_for_print",
    ]


async def test_a_site_going_offline_moves_its_unstarted_orders(
    client: httpx.AsyncClient, shop: dict[str, Any], settings: Settings
) -> None:
    order = await _order(client, shop)
    assert order["routing"]["quote"]["site_slug"] == "hamburg"
    response = await client.patch(
        f"/sites/{shop['hamburg']['id']}/status", json={"status": "offline"}, headers=bearer(shop["admin"])
    )
    assert response.status_code == 200
    await run_worker_until_idle(settings)

    moved = await _get(client, shop, order["id"])
    assert moved["routing"]["quote"]["site_slug"] == "bremen"
    assert moved["reroutes"] == 1
    assert moved["print_job_id"] != order["print_job_id"]
    assert moved["status"] == "ready_for_print"  # the new printer's job was prepared too
    events = (await client.get(f"/orders/{order['id']}/events", headers=bearer(shop["tech"]))).json()
    rerouted = next(e for e in events if e["to_status"] == "rerouted")
    assert rerouted["reason"] == "site_offline"
    assert rerouted["data"]["previous"]["site_id"] == shop["hamburg"]["id"]
    assert rerouted["data"]["site"] == "bremen"
    old_job = await client.get(f"/print-jobs/{order['print_job_id']}", headers=bearer(shop["admin"]))
    assert old_job.json()["status"] == "cancelled"


async def test_an_order_no_other_site_can_make_fails_with_its_reason(
    client: httpx.AsyncClient, shop: dict[str, Any], settings: Settings
) -> None:
    order = await _order(client, shop)
    for site in (shop["bremen"], shop["hamburg"]):
        await client.patch(
            f"/sites/{site['id']}/status", json={"status": "offline"}, headers=bearer(shop["admin"])
        )
    await run_worker_until_idle(settings)
    failed = await _get(client, shop, order["id"])
    assert failed["status"] == "failed"
    assert failed["failure_code"] == "no_capable_site"


async def test_operators_can_reroute_and_finished_orders_cannot_be(
    client: httpx.AsyncClient, shop: dict[str, Any]
) -> None:
    order = await _order(client, shop)
    moved = await client.post(f"/orders/{order['id']}/reroute", headers=bearer(shop["admin"]))
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "rerouted"
    assert moved.json()["routing"]["quote"]["site_slug"] == "bremen"
    await client.post(f"/orders/{order['id']}/cancel", json={}, headers=bearer(shop["tech"]))
    again = await client.post(f"/orders/{order['id']}/reroute", headers=bearer(shop["admin"]))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_order_transition"


async def test_a_failed_print_job_moves_the_order_to_another_site(
    client: httpx.AsyncClient, shop: dict[str, Any], orders_in: Any
) -> None:
    order = await _order(client, shop)
    job_id = uuid.UUID(order["print_job_id"])
    async with orders_in() as orders:
        job = await orders.printing.fail_preparation(job_id, code="slicer_failed", message="segfault")
        assert job is not None
        await follow(orders, job)
    moved = await _get(client, shop, order["id"])
    assert moved["status"] == "rerouted"
    assert moved["routing"]["quote"]["site_slug"] == "bremen"
    events = (await client.get(f"/orders/{order['id']}/events", headers=bearer(shop["tech"]))).json()
    assert events[-1]["reason"] == "print_job_failed:slicer_failed"
