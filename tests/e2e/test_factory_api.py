"""The factory API end to end: an order's print job is claimed under a lease, printed and completed; stale
and forged tokens, other sites' jobs and bad input are refused without changing anything."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from arq import create_pool
from arq.connections import RedisSettings

from services.config import Settings
from services.db import create_engine, session_factory, transaction
from services.fulfilment.repository import FactoryJobRepository
from tests.builders import (
    BREMEN,
    HAMBURG,
    bearer,
    lease_log,
    make_key,
    make_shop,
    order_body,
    place_order,
)
from tests.workers import run_worker_until_idle


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Leases short enough to run out inside a test.
    return settings.model_copy(update={"factory_lease_seconds": 1.5, "factory_claim_poll_s": 0.1})


async def ordered(client: httpx.AsyncClient, settings: Settings, count: int = 1) -> dict[str, Any]:
    """A shop with sites in Hamburg and Bremen, ``count`` prepared orders routed to Hamburg, and a factory
    key for each site."""
    shop = await make_shop(client, settings, {"hamburg": HAMBURG, "bremen": BREMEN})
    orders = []
    for _ in range(count):
        response = await place_order(client, shop["tech"], order_body("BR-1"))
        assert response.status_code == 201, response.text
        assert site_of(response.json()) == shop["hamburg"]["id"]
        orders.append(response.json())
    await run_worker_until_idle(settings)
    keys = {
        slug: await make_key(client, shop["admin"], "factory", site_id=shop[slug]["id"])
        for slug in ("hamburg", "bremen")
    }
    return {**shop, "orders": orders, "keys": keys}


def site_of(order: dict[str, Any]) -> str:
    return str(order["routing"]["quote"]["site_id"])


async def claim(client: httpx.AsyncClient, key: str, **body: Any) -> httpx.Response:
    return await client.post("/factory/jobs/claim", json=body, headers=bearer(key))


async def report(
    client: httpx.AsyncClient, key: str, job_id: str, call: str, body: dict[str, Any]
) -> httpx.Response:
    """A lease holder's ``heartbeat``, ``complete`` or ``fail`` for the job."""
    return await client.post(f"/factory/jobs/{job_id}/{call}", json=body, headers=bearer(key))


async def order_of(client: httpx.AsyncClient, shop: dict[str, Any], order_id: str) -> dict[str, Any]:
    response = await client.get(f"/orders/{order_id}", headers=bearer(shop["tech"]))
    return dict(response.json())


async def test_claim_print_and_complete(client: httpx.AsyncClient, settings: Settings) -> None:
    shop = await ordered(client, settings)
    key = shop["keys"]["hamburg"]
    order = shop["orders"][0]
    assert (await order_of(client, shop, order["id"]))["status"] == "ready_for_print"

    response = await claim(
        client, key, printer_id=order["routing"]["quote"]["printer_id"], materials=["petg"]
    )
    assert response.status_code == 200, response.text
    claimed = response.json()
    job, lease = claimed["job"], claimed["lease"]
    assert job["order_id"] == order["id"]
    assert job["status"] == "claimed"
    assert lease["fence"] == 1
    assert {a["kind"] for a in job["artifacts"]} == {"gcode", "model"}
    assert (await order_of(client, shop, order["id"]))["status"] == "printing"
    # Nothing else is ready: the next claim finds nothing.
    assert (await claim(client, key)).status_code == 204

    gcode = next(a for a in job["artifacts"] if a["kind"] == "gcode")
    download = await client.get(gcode["url"], headers=bearer(key))
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == gcode["sha256"]
    assert len(download.content) == gcode["bytes"] == int(download.headers["content-length"])
    assert download.headers["etag"] == f'"{gcode["sha256"]}"'

    beat = await report(
        client,
        key,
        job["id"],
        "heartbeat",
        {"token": lease["token"], "progress": 42.5, "printer_state": "printing"},
    )
    assert beat.status_code == 200, beat.text
    assert beat.json()["status"] == "printing"
    assert beat.json()["lease"]["expires_at"] >= lease["expires_at"]

    body = {
        "token": lease["token"],
        "part_weight_g": 12.5,
        "qa_checks": [{"name": "dimensions", "passed": True}],
        "notes": "clean print",
    }
    done = await report(client, key, job["id"], "complete", body)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "done"
    # The same complete again answers the same; other measurements conflict.
    again = await report(client, key, job["id"], "complete", body)
    assert again.status_code == 200
    assert again.json() == done.json()
    other = await report(client, key, job["id"], "complete", {**body, "part_weight_g": 99})
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "completion_conflict"
    late_beat = await report(
        client,
        key,
        job["id"],
        "heartbeat",
        {"token": lease["token"], "progress": 100, "printer_state": "idle"},
    )
    assert late_beat.status_code == 409
    assert late_beat.json()["error"]["details"]["reason"] == "job_finished"

    final = await order_of(client, shop, order["id"])
    assert final["status"] == "printed"
    events = (await client.get(f"/orders/{order['id']}/events", headers=bearer(shop["tech"]))).json()
    kinds = [e["kind"] for e in events]
    assert kinds[-2:] == ["printing", "printed"]


async def test_lapsed_lease_is_reclaimed_and_the_old_token_refused(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    shop = await ordered(client, settings)
    key = shop["keys"]["hamburg"]
    first = (await claim(client, key)).json()
    job_id, old = first["job"]["id"], first["lease"]["token"]
    await asyncio.sleep(settings.factory_lease_seconds + 0.3)

    second = await claim(client, key, wait_seconds=2)
    assert second.status_code == 200, second.text
    assert second.json()["job"]["id"] == job_id
    assert second.json()["lease"]["fence"] == 2

    for path, body in (
        ("heartbeat", {"token": old, "progress": 50, "printer_state": "printing"}),
        ("complete", {"token": old}),
        ("fail", {"token": old, "reason": "print_failed", "retry_here": True}),
    ):
        response = await report(client, key, job_id, path, body)
        assert response.status_code == 409, (path, response.text)
        assert response.json()["error"]["code"] == "lease_lost"
        assert response.json()["error"]["details"]["reason"] == "superseded"
    # A forged token with the current fence is refused too.
    forged = f"2.{'A' * 24}"
    response = await report(
        client, key, job_id, "heartbeat", {"token": forged, "progress": 1, "printer_state": "printing"}
    )
    assert response.status_code == 409
    assert response.json()["error"]["details"]["reason"] == "unknown_token"

    leases = (await lease_log(settings, job_id))[job_id]
    assert [(lease.fence, lease.outcome) for lease in leases] == [(1, "expired"), (2, None)]
    assert leases[0].ended_at is not None
    assert leases[0].ended_at <= leases[1].claimed_at
    order = await order_of(client, shop, shop["orders"][0]["id"])
    assert order["status"] == "printing"


async def test_failures_retry_here_then_reroute(client: httpx.AsyncClient, settings: Settings) -> None:
    shop = await ordered(client, settings)
    key = shop["keys"]["hamburg"]
    order_id = shop["orders"][0]["id"]
    for attempt in range(settings.max_print_failures_per_site):
        claimed = (await claim(client, key)).json()
        response = await report(
            client,
            key,
            claimed["job"]["id"],
            "fail",
            {"token": claimed["lease"]["token"], "reason": "print_failed", "retry_here": True},
        )
        assert response.status_code == 200, response.text
        last = attempt == settings.max_print_failures_per_site - 1
        assert response.json()["status"] == ("failed" if last else "ready")
        status = (await order_of(client, shop, order_id))["status"]
        assert status == ("rerouted" if last else "ready_for_print")
    moved = await order_of(client, shop, order_id)
    assert site_of(moved) == shop["bremen"]["id"]
    assert (await claim(client, key)).status_code == 204
    await run_worker_until_idle(settings)
    bremen = await claim(client, shop["keys"]["bremen"])
    assert bremen.status_code == 200
    assert bremen.json()["job"]["order_id"] == order_id


async def test_no_retry_here_reroutes_at_once(client: httpx.AsyncClient, settings: Settings) -> None:
    shop = await ordered(client, settings)
    key = shop["keys"]["hamburg"]
    claimed = (await claim(client, key)).json()
    response = await report(
        client,
        key,
        claimed["job"]["id"],
        "fail",
        {"token": claimed["lease"]["token"], "reason": "material_unavailable", "retry_here": False},
    )
    assert response.status_code == 200
    assert response.json()["failure_code"] == "material_unavailable"
    moved = await order_of(client, shop, shop["orders"][0]["id"])
    assert (moved["status"], site_of(moved)) == ("rerouted", shop["bremen"]["id"])


async def test_other_sites_and_bad_input_change_nothing(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    shop = await ordered(client, settings)
    key, other = shop["keys"]["hamburg"], shop["keys"]["bremen"]
    job_id = (await client.get("/factory/jobs", headers=bearer(key))).json()["items"][0]["id"]

    # Another site sees nothing: not in its list, not by id, not claimable.
    assert (await client.get("/factory/jobs", headers=bearer(other))).json()["items"] == []
    for method, path in (
        ("GET", f"/factory/jobs/{job_id}"),
        ("GET", f"/factory/jobs/{job_id}/artifacts/gcode"),
    ):
        response = await client.request(method, path, headers=bearer(other))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "print_job_not_found"
    assert (await claim(client, other)).status_code == 204

    # A complete for a job never claimed.
    never = await report(client, key, job_id, "complete", {"token": "1." + "b" * 24})
    assert never.status_code == 409
    assert never.json()["error"]["code"] == "job_not_claimed"

    claimed = (await claim(client, key)).json()
    token = claimed["lease"]["token"]
    bad_bodies = [
        {"token": token, "progress": 101, "printer_state": "printing"},
        {"token": token, "progress": -1, "printer_state": "printing"},
        {"token": token, "progress": 5, "printer_state": "exploding"},
        {"token": "not-a-token", "progress": 5, "printer_state": "printing"},
    ]
    for body in bad_bodies:
        response = await report(client, key, job_id, "heartbeat", body)
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "validation_error"
    stolen = await report(
        client, other, job_id, "heartbeat", {"token": token, "progress": 5, "printer_state": "printing"}
    )
    assert stolen.status_code == 404
    qa = await report(
        client, key, job_id, "complete", {"token": token, "qa_checks": [{"name": "fit", "passed": False}]}
    )
    assert qa.status_code == 422
    assert qa.json()["error"]["code"] == "qa_check_failed"

    job = (await client.get(f"/factory/jobs/{job_id}", headers=bearer(key))).json()
    assert (job["status"], job["progress"], job["fence"]) == ("claimed", 0.0, 1)


async def test_a_printer_not_of_the_callers_site_is_refused_before_any_wait(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    shop = await ordered(client, settings)
    key, other = shop["keys"]["hamburg"], shop["keys"]["bremen"]
    hamburgs_printer = shop["orders"][0]["routing"]["quote"]["printer_id"]

    answers = []
    for caller, printer_id in ((other, hamburgs_printer), (key, str(uuid.uuid4()))):
        started = asyncio.get_running_loop().time()
        response = await claim(client, caller, printer_id=printer_id, wait_seconds=5)
        assert asyncio.get_running_loop().time() - started < 2, "the claim long-polled first"
        assert response.status_code == 404, response.text
        error = response.json()["error"]
        assert error["code"] == "printer_not_found"
        assert error["details"] == {"printer_id": printer_id}
        answers.append(error["message"])
    # Another site's printer and one that does not exist are told apart by nothing.
    assert answers[0] == answers[1]

    # Nothing was claimed: the job is still Hamburg's to take with its printer.
    response = await claim(client, key, printer_id=hamburgs_printer)
    assert response.status_code == 200, response.text
    assert response.json()["lease"]["fence"] == 1


async def test_artifact_ranges(client: httpx.AsyncClient, settings: Settings) -> None:
    shop = await ordered(client, settings)
    key = shop["keys"]["hamburg"]
    job = (await claim(client, key)).json()["job"]
    gcode = next(a for a in job["artifacts"] if a["kind"] == "gcode")
    whole = (await client.get(gcode["url"], headers=bearer(key))).content
    size = len(whole)

    for header, expected in (
        ("bytes=0-99", whole[:100]),
        ("bytes=100-", whole[100:]),
        ("bytes=-50", whole[-50:]),
        (f"bytes=10-{size + 500}", whole[10:]),
    ):
        response = await client.get(gcode["url"], headers={**bearer(key), "Range": header})
        assert response.status_code == 206, (header, response.text)
        assert response.content == expected
        start = size - len(expected) if header.startswith("bytes=-") else int(header[6:].split("-")[0])
        assert response.headers["content-range"] == f"bytes {start}-{start + len(expected) - 1}/{size}"

    stale = await client.get(gcode["url"], headers={**bearer(key), "Range": "bytes=0-9", "If-Range": '"x"'})
    assert stale.status_code == 200
    assert stale.content == whole

    for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        response = await client.get(gcode["url"], headers={**bearer(key), "Range": header})
        assert response.status_code == 416, header
        assert response.json()["error"]["code"] == "range_not_satisfiable"
        assert response.headers["content-range"] == f"bytes */{size}"
    for header in ("bytes=9-3", "lines=0-5", "bytes=abc"):
        response = await client.get(gcode["url"], headers={**bearer(key), "Range": header})
        assert response.status_code == 400, header
        assert response.json()["error"]["code"] == "invalid_range"


async def test_the_factory_watch_frees_lapsed_jobs_and_takes_silent_sites_offline(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    shop = await ordered(client, settings)
    key, hamburg = shop["keys"]["hamburg"], shop["hamburg"]["id"]
    claimed = (await claim(client, key)).json()
    job_id, token = claimed["job"]["id"], claimed["lease"]["token"]
    await asyncio.sleep(settings.factory_lease_seconds + 0.2)
    # Hamburg's agents last called an hour ago (rather than waiting out the silence in the test).
    engine = create_engine(settings.resolved_database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            presence = await FactoryJobRepository(session).presence(uuid.UUID(hamburg))
            assert presence is not None
            presence.last_seen_at -= timedelta(hours=1)
    finally:
        await engine.dispose()

    assert settings.redis_url is not None
    queue = await create_pool(
        RedisSettings.from_dsn(settings.redis_url), default_queue_name=settings.queue_name
    )
    try:
        await queue.enqueue_job("watch_factories")
    finally:
        await queue.aclose()
    await run_worker_until_idle(settings)

    admin = bearer(shop["admin"])
    assert (await client.get(f"/sites/{hamburg}", headers=admin)).json()["status"] == "offline"
    order = await order_of(client, shop, shop["orders"][0]["id"])
    assert (order["status"], site_of(order)) == ("ready_for_print", shop["bremen"]["id"])
    kinds = [e["kind"] for e in (await client.get(f"/orders/{order['id']}/events", headers=admin)).json()]
    assert kinds[-4:] == ["ready_for_print", "rerouted", "preparing", "ready_for_print"]
    late = await report(
        client, key, job_id, "heartbeat", {"token": token, "progress": 60, "printer_state": "printing"}
    )
    assert late.status_code == 409
    assert late.json()["error"]["details"]["reason"] == "job_cancelled"

    # Its agents call again: the site is back, with nothing left to print.
    assert (await claim(client, key)).status_code == 204
    assert (await client.get(f"/sites/{hamburg}", headers=admin)).json()["status"] == "online"
