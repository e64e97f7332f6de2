"""Orders through the API: routing, the promise and its breakdown, idempotency, cancelling, bad input."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from parts_catalog.sqltypes import utcnow
from services.config import Settings
from services.db import create_engine, session_factory
from services.idempotency.store import IdempotencyStore, fingerprint
from tests.builders import (
    BREMEN,
    HAMBURG,
    MUNICH,
    bearer,
    factory_body,
    make_account,
    make_factory,
    make_key,
    make_shop,
    order_body,
    place_order,
)


@pytest.fixture
async def shop(client: httpx.AsyncClient, settings: Settings) -> dict[str, Any]:
    """An operator, an organization with a technician and a checked part, and sites in Hamburg and Munich."""
    return await make_shop(client, settings, {"hamburg": HAMBURG, "munich": MUNICH})


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_an_order_goes_to_the_nearest_site_with_a_breakdown_that_adds_up(
    client: httpx.AsyncClient, shop: dict[str, Any]
) -> None:
    response = await place_order(client, shop["tech"], order_body("BR-1", BREMEN))
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "routed"
    routing = order["routing"]
    quote = routing["quote"]
    assert quote["site_slug"] == "hamburg"
    assert quote["printer_key"] == "mk4-01"
    assert quote["on_time"] is True
    assert order["promised_delivery_at"] == order["eta"] == quote["delivery_at"]
    b = quote["breakdown"]
    parts = ("queue_wait_seconds", "print_seconds", "post_processing_seconds", "courier_wait_seconds",
             "transit_seconds")  # fmt: skip
    assert sum(b[p] for p in parts) == pytest.approx(b["total_seconds"], abs=1e-3)
    decided = _ts(routing["decided_at"])
    assert _ts(quote["print_start"]) - decided == timedelta(seconds=b["queue_wait_seconds"])
    assert _ts(quote["print_end"]) - _ts(quote["print_start"]) == timedelta(seconds=b["print_seconds"])
    assert _ts(quote["delivery_at"]) - decided == timedelta(seconds=b["total_seconds"])
    assert b["print_seconds"] > 0
    assert b["transit_seconds"] > 0
    # A pickup every day: the parcel never waits more than a day for the courier.
    assert 0 <= b["courier_wait_seconds"] < 24 * 3600
    (alternative,) = routing["alternatives"]
    assert alternative["site_slug"] == "munich"
    assert alternative["lost_because"] in {"later_delivery", "higher_cost"}

    events = (await client.get(f"/orders/{order['id']}/events", headers=bearer(shop["tech"]))).json()
    assert [(e["from_status"], e["to_status"]) for e in events] == [
        (None, "received"),
        ("received", "routed"),
    ]
    job = (await client.get(f"/print-jobs/{order['print_job_id']}", headers=bearer(shop["admin"]))).json()
    assert job["printer"]["name"] == "hamburg/mk4-01"


async def test_the_sla_sends_an_order_to_a_farther_site_when_the_nearest_cannot_make_it(
    client: httpx.AsyncClient, shop: dict[str, Any]
) -> None:
    admin = shop["admin"]
    for site, status in ((shop["hamburg"], "paused"), (shop["munich"], "offline")):
        await client.patch(f"/sites/{site['id']}/status", json={"status": status}, headers=bearer(admin))
    # The nearest site takes two days to post-process: too slow for 30 hours.
    await make_factory(client, admin, "hamburg-slow", (53.56, 10.0), post_processing_minutes=2880)
    await make_factory(client, admin, "bremen", BREMEN)

    # 30 h: Bremen makes it (print, post-processing, at most a day's wait for the daily pickup, ~2.4 h of
    # express transit).
    urgent = await place_order(
        client, shop["tech"], order_body("BR-1", HAMBURG, sla=None, need_by=_in(hours=30))
    )
    assert urgent.status_code == 201, urgent.text
    routing = urgent.json()["routing"]
    assert routing["quote"]["site_slug"] == "bremen"
    assert routing["quote"]["on_time"] is True
    assert {a["site_slug"]: a["lost_because"] for a in routing["alternatives"]} == {
        "hamburg-slow": "sla_missed"
    }


def _in(**delta: float) -> str:
    return (utcnow() + timedelta(**delta)).isoformat()


async def test_an_unachievable_sla_says_when_and_where_it_could_be_done(
    client: httpx.AsyncClient, shop: dict[str, Any]
) -> None:
    body = order_body("BR-1", HAMBURG, sla=None, need_by=_in(hours=1))
    refused = await place_order(client, shop["tech"], body)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "sla_unachievable"
    earliest = error["details"]["earliest"]
    assert earliest["site_slug"] == "hamburg"
    assert _ts(earliest["delivery_at"]) > _ts(body["need_by"])
    listed = (await client.get("/orders", headers=bearer(shop["tech"]))).json()
    assert listed["items"] == []  # nothing half-written

    late = await place_order(client, shop["tech"], {**body, "accept_late": True})
    assert late.status_code == 201, late.text
    quote = late.json()["routing"]["quote"]
    assert quote["on_time"] is False
    # The promise is the earliest the refusal named (or earlier, never later: nothing else was booked).
    assert _ts(quote["delivery_at"]) <= _ts(earliest["delivery_at"]) + timedelta(seconds=1)


async def test_no_capable_site(client: httpx.AsyncClient, shop: dict[str, Any]) -> None:
    response = await place_order(client, shop["tech"], order_body("BR-1", material="ASA"))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "material_not_allowed"
    for site in (shop["hamburg"], shop["munich"]):
        await client.patch(
            f"/sites/{site['id']}/status", json={"status": "offline"}, headers=bearer(shop["admin"])
        )
    response = await place_order(client, shop["tech"], order_body("BR-1"))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "no_capable_site"
    assert response.json()["error"]["details"]["rejections"] == ["offline"]


async def test_idempotency_replays_refuses_reuse_and_frees_failed_keys(
    client: httpx.AsyncClient, shop: dict[str, Any], settings: Settings
) -> None:
    body = order_body("BR-1")
    first = await place_order(client, shop["tech"], body, key="order-key-0001")
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    again = await place_order(client, shop["tech"], {**body}, key="order-key-0001")
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    listed = (await client.get("/orders", headers=bearer(shop["tech"]))).json()
    assert len(listed["items"]) == 1  # ordered once

    other = await place_order(client, shop["tech"], {**body, "quantity": 2}, key="order-key-0001")
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"

    # A request that failed stored nothing: its key may carry a corrected request.
    impossible = {**body, "sla": None, "need_by": _in(minutes=30)}
    failed = await place_order(client, shop["tech"], impossible, key="order-key-0002")
    assert failed.json()["error"]["code"] == "sla_unachievable"
    fixed = await place_order(client, shop["tech"], {**impossible, "accept_late": True}, key="order-key-0002")
    assert fixed.status_code == 201

    # Keys belong to the organization: another organization's technician has its own key space.
    admin = shop["admin"]
    org_b = await make_account(client, admin, "organizations", slug="other")
    tech_b = await make_key(client, admin, "technician", organization_id=org_b["id"])
    foreign = await place_order(client, tech_b, body, key="order-key-0001")
    assert foreign.status_code == 404  # its own request: BR-1 is not its part


async def test_a_retry_while_the_first_request_is_in_flight_is_refused(
    client: httpx.AsyncClient, shop: dict[str, Any], settings: Settings
) -> None:
    body = order_body("BR-1")
    owner, request = f"account:{shop['org']['id']}", fingerprint("POST", "/orders", json.dumps(body).encode())
    engine = create_engine(settings.resolved_database_url)
    sessions = session_factory(engine)
    store = IdempotencyStore(retention=timedelta(hours=48), lock_timeout=timedelta(minutes=1))
    try:
        # What a first request does before it routes: claim the key (here it then stalls).
        async with sessions() as session:
            claim = await store.claim(session, owner, "in-flight-key", request, now=utcnow())
        response = await place_order(client, shop["tech"], body, key="in-flight-key")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "idempotency_key_in_flight"
        # The first request's process died: after the lock timeout a retry takes the key over.
        async with sessions() as session:
            later = utcnow() + timedelta(minutes=2)
            assert await store.claim(session, owner, "in-flight-key", request, now=later) == claim
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"destination": {**order_body("x")["destination"], "latitude": 91}}, 422, "validation_error"),
        ({"destination": {**order_body("x")["destination"], "longitude": -180.5}}, 422, "validation_error"),
        ({"part_number": "NOPE"}, 404, "part_not_found"),
        ({"quantity": 0}, 422, "validation_error"),
        ({"quantity": 100000}, 422, "validation_error"),
        ({"sla": None, "need_by": "2020-01-01T00:00:00Z"}, 422, "need_by_in_past"),
        ({"sla": None, "need_by": "2030-01-01T00:00:00"}, 422, "validation_error"),  # no time zone
        ({"sla": None, "need_by": "2099-01-01T00:00:00Z"}, 422, "need_by_too_far"),
        ({"need_by": "2030-01-01T00:00:00Z"}, 422, "validation_error"),  # both sla and need_by
        ({"sla": "12h"}, 422, "validation_error"),
        ({"revision_id": "00000000-0000-0000-0000-000000000000"}, 422, "validation_error"),  # and part_number
        ({"surprise": 1}, 422, "validation_error"),
    ],
)
async def test_bad_orders_are_refused_with_a_code_and_leave_nothing(
    client: httpx.AsyncClient, shop: dict[str, Any], change: dict[str, Any], status: int, code: str
) -> None:
    response = await place_order(client, shop["tech"], {**order_body("BR-1"), **change})
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert (await client.get("/orders", headers=bearer(shop["tech"]))).json()["items"] == []


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, "idempotency_key_missing"), ({"Idempotency-Key": "short"}, "idempotency_key_invalid"),
     ({"Idempotency-Key": "has spaces in it"}, "idempotency_key_invalid"),
     ({"Idempotency-Key": "x" * 256}, "idempotency_key_invalid")],
)  # fmt: skip
async def test_missing_or_malformed_idempotency_keys(
    client: httpx.AsyncClient, shop: dict[str, Any], headers: dict[str, str], code: str
) -> None:
    response = await client.post(
        "/orders", json=order_body("BR-1"), headers={**bearer(shop["tech"]), **headers}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


async def test_cancelling_frees_the_slot_and_other_organizations_see_nothing(
    client: httpx.AsyncClient, shop: dict[str, Any]
) -> None:
    first = (await place_order(client, shop["tech"], order_body("BR-1"))).json()
    second = (await place_order(client, shop["tech"], order_body("BR-1"))).json()
    assert second["routing"]["quote"]["print_start"] >= first["routing"]["quote"]["print_end"]

    org_b = await make_account(client, shop["admin"], "organizations", slug="nosy")
    nosy = await make_key(client, shop["admin"], "technician", organization_id=org_b["id"])
    assert (await client.get(f"/orders/{first['id']}", headers=bearer(nosy))).status_code == 404
    assert (
        await client.post(f"/orders/{first['id']}/cancel", json={}, headers=bearer(nosy))
    ).status_code == 404
    assert (await client.get("/orders", headers=bearer(nosy))).json()["items"] == []

    cancelled = await client.post(
        f"/orders/{first['id']}/cancel", json={"reason": "fixed it"}, headers=bearer(shop["tech"])
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    job = (await client.get(f"/print-jobs/{first['print_job_id']}", headers=bearer(shop["admin"]))).json()
    assert job["status"] == "cancelled"
    again = await client.post(f"/orders/{first['id']}/cancel", json={}, headers=bearer(shop["tech"]))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_order_transition"

    # The freed slot is free again: cancel the second order too, and a new one takes its place exactly.
    await client.post(f"/orders/{second['id']}/cancel", json={}, headers=bearer(shop["admin"]))
    third = (await place_order(client, shop["tech"], order_body("BR-1"))).json()
    assert third["routing"]["quote"]["printer_id"] == second["routing"]["quote"]["printer_id"]
    assert third["routing"]["quote"]["print_start"] <= second["routing"]["quote"]["print_start"]


async def test_listing_pages_newest_first(client: httpx.AsyncClient, shop: dict[str, Any]) -> None:
    ids = [(await place_order(client, shop["tech"], order_body("BR-1"))).json()["id"] for _ in range(3)]
    page = (await client.get("/orders", params={"limit": 2}, headers=bearer(shop["tech"]))).json()
    assert [o["id"] for o in page["items"]] == ids[::-1][:2]
    rest = (await client.get("/orders", params={"limit": 2, "cursor": page["next_cursor"]},
                             headers=bearer(shop["tech"]))).json()  # fmt: skip
    assert [o["id"] for o in rest["items"]] == [ids[0]]
    assert rest["next_cursor"] is None
    admin_view = (
        await client.get("/orders", params={"status": "routed"}, headers=bearer(shop["admin"]))
    ).json()
    assert len(admin_view["items"]) == 3


async def test_qualified_revisions_gate_a_site(client: httpx.AsyncClient, shop: dict[str, Any]) -> None:
    admin = shop["admin"]
    body = factory_body("hamburg", HAMBURG, qualified_revisions=[str(uuid.uuid4())])
    replaced = await client.put(f"/sites/{shop['hamburg']['id']}", json=body, headers=bearer(admin))
    assert replaced.status_code == 200, replaced.text
    order = (await place_order(client, shop["tech"], order_body("BR-1", HAMBURG))).json()
    assert order["routing"]["quote"]["site_slug"] == "munich"  # Hamburg is not qualified for this revision

    body["qualified_revisions"] = [order["revision_id"]]
    await client.put(f"/sites/{shop['hamburg']['id']}", json=body, headers=bearer(admin))
    again = (await place_order(client, shop["tech"], order_body("BR-1", HAMBURG))).json()
    assert again["routing"]["quote"]["site_slug"] == "hamburg"


async def test_a_printer_holding_orders_cannot_be_removed(
    client: httpx.AsyncClient, shop: dict[str, Any]
) -> None:
    admin = shop["admin"]
    order = (await place_order(client, shop["tech"], order_body("BR-1", HAMBURG))).json()
    without_printers = factory_body("hamburg", HAMBURG, printers=[])
    refused = await client.put(
        f"/sites/{shop['hamburg']['id']}", json=without_printers, headers=bearer(admin)
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "printer_has_orders"
    assert refused.json()["error"]["details"] == {"printers": ["mk4-01"]}

    await client.post(f"/orders/{order['id']}/cancel", json={}, headers=bearer(shop["tech"]))
    removed = await client.put(
        f"/sites/{shop['hamburg']['id']}", json=without_printers, headers=bearer(admin)
    )
    assert removed.status_code == 200, removed.text
    assert (await client.get(f"/orders/{order['id']}", headers=bearer(shop["tech"]))).json()[
        "status"
    ] == "cancelled"
