"""A site goes offline and one of its orders cannot be re-routed (its re-route raises every time): the others
still move, and the bad one is flagged for an operator after ``max_job_attempts`` instead of making the
reconciler wake the site every minute for ever (issue 14)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from services.config import Settings
from services.orders.service import OrderService
from tests.builders import BREMEN, HAMBURG, bearer, make_shop, order_body, place_order
from tests.e2e.test_shipping import enqueue
from tests.workers import run_worker_until_idle


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_job_attempts": 3})


async def _get(client: httpx.AsyncClient, token: str, path: str) -> Any:
    response = await client.get(path, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()


async def test_an_order_that_cannot_be_rerouted_is_flagged_and_the_others_move(
    client: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await make_shop(client, settings, {"hamburg": HAMBURG, "bremen": BREMEN})
    placed = []
    for _ in range(3):
        response = await place_order(client, shop["tech"], order_body("BR-1", HAMBURG))
        assert response.status_code == 201, response.text
        placed.append(response.json())
    await run_worker_until_idle(settings)
    # The first the job takes (orders go by need-by) fails every time.
    bad = min(placed, key=lambda o: o["need_by"])["id"]
    reroute = OrderService.reroute

    async def failing(self: OrderService, order_id: uuid.UUID, **kwargs: Any) -> Any:
        if str(order_id) == bad:
            raise RuntimeError("cannot read this order")
        return await reroute(self, order_id, **kwargs)

    monkeypatch.setattr(OrderService, "reroute", failing)

    response = await client.patch(
        f"/sites/{shop['hamburg']['id']}/status", json={"status": "offline"}, headers=bearer(shop["admin"])
    )
    assert response.status_code == 200
    await run_worker_until_idle(settings)  # reroute_site: no job failed

    for order in placed:
        current = await _get(client, shop["tech"], f"/orders/{order['id']}")
        site = current["routing"]["quote"]["site_slug"]
        assert site == ("hamburg" if order["id"] == bad else "bremen")

    async def failures() -> list[dict[str, Any]]:
        events = await _get(client, shop["admin"], f"/orders/{bad}/events")
        return [e for e in events if e["kind"] in ("reroute_failed", "needs_attention")]

    # The reconciler finds the site stranded and wakes it again (a burst worker also reconciles as it
    # starts), until the third failure flags the order.
    for _ in range(5):
        await enqueue(settings, "reconcile")
        await run_worker_until_idle(settings)
    flagged = await _get(client, shop["admin"], f"/orders/{bad}")
    assert (flagged["needs_attention"], flagged["status"]) == ("reroute_failed", "ready_for_print")
    recorded = await failures()
    assert [
        (e["kind"], e["data"]["attempt" if e["kind"] == "reroute_failed" else "attempts"]) for e in recorded
    ] == [
        ("reroute_failed", 1),
        ("reroute_failed", 2),
        ("reroute_failed", 3),
        ("needs_attention", 3),
    ]
    assert recorded[-1]["data"]["error"] == "RuntimeError: cannot read this order"

    # An operator fixes the cause and moves the order: the flag clears.
    monkeypatch.setattr(OrderService, "reroute", reroute)
    moved = await client.post(f"/orders/{bad}/reroute", headers=bearer(shop["admin"]))
    assert moved.status_code == 200, moved.text
    assert (moved.json()["needs_attention"], moved.json()["routing"]["quote"]["site_slug"]) == (
        None,
        "bremen",
    )
