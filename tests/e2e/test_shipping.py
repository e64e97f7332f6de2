"""Shipping end to end: a printed order is booked with a courier by the worker, the courier's signed
webhooks come in over real HTTP, and the order follows its parcel to the door.

The built-in ``local`` courier is the courier here: its parcels travel a million times faster than real
time, and the worker's ``drive_local_courier`` job posts their events to the API served on a loopback port.
Partner webhooks are also posted by the tests themselves, signed with a partner secret issued through the
API, to check refusals, replays and out-of-order arrival.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from arq import create_pool
from arq.connections import RedisSettings
from sqlmodel import func, select

from parts_catalog.sqltypes import utcnow
from parts_catalog.storage import LocalBlobStore
from services.api.background import serve_in_background
from services.config import Settings
from services.couriers.providers.local.gateway import LocalCourier
from services.couriers.providers.local.table import LocalParcel
from services.db import create_engine, session_factory, transaction
from services.fulfilment.unit_of_work import order_transaction
from services.routing.snapshot import SnapshotCache
from services.shipping.models import ShipmentEvent
from services.shipping.service import ShippingService
from services.signing import sign
from services.webhooks.inbound.models import InboundWebhook
from tests.builders import (
    HAMBURG,
    bearer,
    get_json,
    make_account,
    make_admin_token,
    make_key,
    make_shop,
    printed_order,
)
from tests.workers import run_worker_until_idle


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"local_courier_time_scale": 1e6, "webhook_max_body_bytes": 4096})


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Settings]:
    """The API on a loopback port; the returned settings tell the worker's courier where to post."""
    async with serve_in_background(settings, settings.redis_url) as base_url:
        yield settings.model_copy(update={"public_base_url": base_url})


async def enqueue(settings: Settings, function: str) -> None:
    assert settings.redis_url is not None
    queue = await create_pool(
        RedisSettings.from_dsn(settings.redis_url), default_queue_name=settings.queue_name
    )
    try:
        await queue.enqueue_job(function)
    finally:
        await queue.aclose()


async def count(settings: Settings, model: Any) -> int:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            return int((await session.exec(select(func.count()).select_from(model))).one())
    finally:
        await engine.dispose()


async def drive_until(
    client: httpx.AsyncClient, settings: Settings, shop: dict[str, Any], order_id: str, status: str
) -> dict[str, Any]:
    """Let the built-in courier report what came due and the worker apply it, until the order has
    ``status``."""
    for _ in range(10):
        await asyncio.sleep(0.05)  # the parcel's day, compressed a million times
        await enqueue(settings, "drive_local_courier")
        await run_worker_until_idle(settings)
        order = await get_json(client, shop["tech"], f"/orders/{order_id}")
        if order["status"] == status:
            return order
    raise AssertionError(f"order still {order['status']}, not {status}")


async def test_a_printed_order_is_booked_shipped_and_delivered_over_signed_webhooks(
    client: httpx.AsyncClient, served: Settings
) -> None:
    shop = await make_shop(client, served, {"hamburg": HAMBURG})
    order = await printed_order(client, served, shop)
    await run_worker_until_idle(served)  # the booking job, enqueued when the part was printed

    shipment = await get_json(client, shop["tech"], f"/orders/{order['id']}/shipment")
    assert shipment["status"] == "booked"
    assert shipment["courier"] == "local"
    assert shipment["tracking_status"] == "pending"
    assert re.fullmatch(r"SFL[0-9A-F]{12}", shipment["tracking_number"])
    assert shipment["parcel"]["weight_g"] == pytest.approx(12.5 + 50)
    assert shipment["pickup_from"] is not None
    label = await client.get(f"/orders/{order['id']}/shipment/label", headers=bearer(shop["tech"]))
    assert label.status_code == 200
    assert label.headers["content-type"] == "application/pdf"
    assert label.content.startswith(b"%PDF-")
    assert shipment["tracking_number"].encode() in label.content
    assert (await get_json(client, shop["tech"], f"/orders/{order['id']}"))["status"] == "printed"

    delivered = await drive_until(client, served, shop, order["id"], "delivered")
    shipment = await get_json(client, shop["tech"], f"/orders/{order['id']}/shipment")
    assert shipment["tracking_status"] == "delivered"
    assert [e["status"] for e in shipment["events"]] == [
        "picked_up",
        "in_transit",
        "out_for_delivery",
        "delivered",
    ]
    assert delivered["eta"] == shipment["delivered_at"]
    assert delivered["needs_attention"] is None
    # Every event came in over HTTP as a signed webhook and was processed once.
    assert await count(served, InboundWebhook) == 4

    timeline = await get_json(client, shop["tech"], f"/orders/{order['id']}/timeline")
    assert timeline["status"] == "delivered"
    assert timeline["shipment"]["tracking_number"] == shipment["tracking_number"]
    kinds = [e["kind"] for e in timeline["entries"]]
    for expected in (
        "received",
        "routed",
        "job_claimed",
        "printed",
        "shipment_booked",
        "shipped",
        "tracking_delivered",
        "delivered",
    ):
        assert expected in kinds, (expected, kinds)
    assert {e["source"] for e in timeline["entries"]} == {"routing", "printing", "shipping"}
    times = [e["at"] for e in timeline["entries"]]
    assert times == sorted(times, key=datetime.fromisoformat)
    assert (
        kinds.index("received")
        < kinds.index("printed")
        < kinds.index("shipment_booked")
        < kinds.index("delivered")
    )

    outsider_org = await make_account(client, shop["admin"], "organizations")
    outsider = await make_key(client, shop["admin"], "technician", organization_id=outsider_org["id"])
    for path in ("timeline", "shipment", "shipment/label"):
        refused = await client.get(f"/orders/{order['id']}/{path}", headers=bearer(outsider))
        assert refused.status_code == 404, path
        assert refused.json()["error"]["code"] == "order_not_found"


async def partner_secret(client: httpx.AsyncClient, admin: str, slug: str, secret: str | None = None) -> str:
    """A new webhook secret of the partner: ``secret`` as given (Karrio's), else one we issue."""
    partners = {p["slug"]: p for p in await_list(await client.get("/partners", headers=bearer(admin)))}
    partner = partners.get(slug) or await make_account(client, admin, "partners", slug=slug)
    body = {"secret": secret} if secret is not None else {}
    issued = await client.post(f"/partners/{partner['id']}/webhook-secrets", json=body, headers=bearer(admin))
    assert issued.status_code == 201, issued.text
    return str(issued.json()["secret"])


def await_list(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return list(response.json())


def tracking_body(number: str, status: str, at: datetime, **extra: Any) -> bytes:
    data = {"tracking_number": number, "status": status, "occurred_at": at.isoformat(), **extra}
    return json.dumps({"type": "tracking.updated", "data": data}).encode()


async def post_signed(
    client: httpx.AsyncClient,
    partner: str,
    secret: str,
    body: bytes,
    *,
    msg_id: str | None = None,
    sent: datetime | None = None,
) -> httpx.Response:
    headers = sign([secret], msg_id or f"msg_{uuid.uuid4().hex}", sent or utcnow(), body)
    return await client.post(f"/webhooks/partners/{partner}", content=body, headers=headers)


def rejections(metrics: str) -> dict[tuple[str, str], float]:
    found = {}
    for line in metrics.splitlines():
        match = re.fullmatch(
            r'spareflow_webhook_rejections_total\{reason="(\w+)",source="([\w-]+)"\} (\S+)', line
        )
        if match:
            found[(match[2], match[1])] = float(match[3])
    return found


async def test_bad_webhooks_are_refused_counted_and_nothing_is_stored(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    admin = await make_admin_token(settings)
    secret = await partner_secret(client, admin, "acme-logistics")
    good = tracking_body("TRK-1", "in_transit", utcnow())
    before = rejections((await client.get("/metrics")).text)

    def signed(body: bytes, **change: Any) -> dict[str, str]:
        return sign([change.pop("secret", secret)], "msg_1", change.pop("sent", utcnow()), body)

    cases: list[tuple[str, bytes, dict[str, str], int, str, str]] = [
        ("acme-logistics", good, {}, 400, "webhook_headers_missing", "missing_headers"),
        (
            "acme-logistics",
            good,
            signed(good, secret="whsec_" + "QUFB" * 11),
            401,
            "webhook_signature_invalid",
            "invalid_signature",
        ),
        (
            "acme-logistics",
            good.replace(b"in_transit", b"delivered"),
            signed(good),
            401,
            "webhook_signature_invalid",
            "invalid_signature",
        ),
        (
            "acme-logistics",
            good,
            signed(good, sent=utcnow() - timedelta(minutes=6)),
            400,
            "webhook_timestamp_out_of_tolerance",
            "timestamp_too_old",
        ),
        (
            "acme-logistics",
            good,
            signed(good, sent=utcnow() + timedelta(minutes=6)),
            400,
            "webhook_timestamp_out_of_tolerance",
            "timestamp_in_future",
        ),
        ("acme-logistics", b"x" * 5000, signed(b"x" * 5000), 413, "payload_too_large", "too_large"),
        ("acme-logistics", b"<xml/>", signed(b"<xml/>"), 400, "webhook_payload_invalid", "not_json"),
        (
            "acme-logistics",
            b'{"type": "parcel.eaten"}',
            signed(b'{"type": "parcel.eaten"}'),
            422,
            "webhook_payload_invalid",
            "invalid_payload",
        ),
        ("no-such-partner", good, signed(good), 401, "webhook_signature_invalid", "invalid_signature"),
    ]
    for partner, body, headers, status, code, _ in cases:
        response = await client.post(f"/webhooks/partners/{partner}", content=body, headers=headers)
        assert response.status_code == status, (code, response.text)
        assert response.json()["error"]["code"] == code
    assert await count(settings, InboundWebhook) == 0

    after = rejections((await client.get("/metrics")).text)
    expected: dict[tuple[str, str], int] = {}
    for partner, *_, reason in cases:
        # Refused before the partner is looked up (size) or not found: no made-up names become labels.
        source = "partner" if reason == "too_large" else partner if partner == "acme-logistics" else "unknown"
        key = (source, reason)
        expected[key] = expected.get(key, 0) + 1
    for key, increase in expected.items():
        assert after.get(key, 0) - before.get(key, 0) == increase, key

    # A valid event about a tracking number that is not ours is answered like any other, and ignored.
    unknown = await post_signed(client, "acme-logistics", secret, good, msg_id="msg_unknown")
    assert unknown.status_code == 202
    assert unknown.json() == {"accepted": True, "duplicate": False}
    replay = await post_signed(client, "acme-logistics", secret, good, msg_id="msg_unknown")
    assert replay.json() == {"accepted": True, "duplicate": True}
    assert await count(settings, InboundWebhook) == 1


async def test_replays_count_once_and_shuffled_events_end_in_the_same_state(
    client: httpx.AsyncClient, served: Settings
) -> None:
    shop = await make_shop(client, served, {"hamburg": HAMBURG})
    first, second = [await printed_order(client, served, shop) for _ in range(2)]
    await run_worker_until_idle(served)
    secret = await partner_secret(client, shop["admin"], "local")  # a second secret: rotation, both verify
    numbers = [
        (await get_json(client, shop["tech"], f"/orders/{o['id']}/shipment"))["tracking_number"]
        for o in (first, second)
    ]
    start = utcnow() - timedelta(hours=3)
    steps = ["picked_up", "in_transit", "out_for_delivery", "delivered"]
    events = [
        (f"evt-{i}", tracking_body(numbers[0], s, start + timedelta(minutes=30 * i)))
        for i, s in enumerate(steps)
    ]
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    shuffled.append(events[1])  # a replay, after delivery
    answers = []
    for msg_id, body in shuffled:
        answers.append((await post_signed(client, "local", secret, body, msg_id=msg_id)).json()["duplicate"])
    assert answers == [False] * 4 + [True]
    await run_worker_until_idle(served)
    order = await get_json(client, shop["tech"], f"/orders/{first['id']}")
    shipment = await get_json(client, shop["tech"], f"/orders/{first['id']}/shipment")
    assert order["status"] == "delivered"
    assert shipment["tracking_status"] == "delivered"
    assert [e["status"] for e in shipment["events"]] == steps
    assert datetime.fromisoformat(shipment["delivered_at"]) == start + timedelta(minutes=90)
    kinds = [
        e["kind"]
        for e in await_list(await client.get(f"/orders/{first['id']}/events", headers=bearer(shop["tech"])))
    ]
    assert kinds.count("shipped") == 1
    assert kinds.count("delivered") == 1

    # A failed delivery needs an operator; the courier's next attempt clears it.
    failing = [("out_for_delivery", 0), ("delivery_failed", 20)]
    for status, minutes in failing:
        response = await post_signed(
            client, "local", secret, tracking_body(numbers[1], status, start + timedelta(minutes=minutes))
        )
        assert response.status_code == 202
    await run_worker_until_idle(served)
    flagged = await get_json(client, shop["tech"], f"/orders/{second['id']}")
    assert flagged["status"] == "shipped"
    assert flagged["needs_attention"] == "delivery_failed"
    events_of = await_list(await client.get(f"/orders/{second['id']}/events", headers=bearer(shop["tech"])))
    # The two events are applied by concurrent jobs, in either order: the flag is raised once, either way.
    assert [e["kind"] for e in events_of].count("needs_attention") == 1
    await post_signed(
        client, "local", secret, tracking_body(numbers[1], "delivered", start + timedelta(hours=2))
    )
    await run_worker_until_idle(served)
    cleared = await get_json(client, shop["tech"], f"/orders/{second['id']}")
    assert cleared["status"] == "delivered"
    assert cleared["needs_attention"] is None


async def test_a_refused_booking_is_parked_for_an_operator_and_retried(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # Karrio books from a street address; this site has only coordinates.
    shop = await make_shop(client, settings, {"hamburg": HAMBURG})
    site = shop["hamburg"]
    body = {k: v for k, v in site.items() if k not in {"id", "created_at", "updated_at"}}
    body["printers"] = [{k: v for k, v in p.items() if k not in {"id", "site_id"}} for p in site["printers"]]
    changed = await client.put(
        f"/sites/{site['id']}", json={**body, "courier": "karrio"}, headers=bearer(shop["admin"])
    )
    assert changed.status_code == 200, changed.text
    order = await printed_order(client, settings, shop)
    await run_worker_until_idle(settings)

    parked = await get_json(client, shop["tech"], f"/orders/{order['id']}")
    assert parked["status"] == "printed"
    assert parked["needs_attention"] == "booking_origin_address_missing"
    shipment = await get_json(client, shop["admin"], f"/orders/{order['id']}/shipment")
    assert shipment["status"] == "needs_attention"
    assert "no address" in shipment["last_error"]

    address = {"lines": ["Am Sandtorkai 1"], "city": "Hamburg", "postal_code": "20457", "country": "DE"}
    fixed = await client.put(
        f"/sites/{site['id']}",
        json={**body, "courier": "local", "address": address},
        headers=bearer(shop["admin"]),
    )
    assert fixed.status_code == 200, fixed.text
    retried = await client.post(f"/shipments/{shipment['id']}/retry-booking", headers=bearer(shop["admin"]))
    assert retried.status_code == 200, retried.text
    again = await client.post(f"/shipments/{shipment['id']}/retry-booking", headers=bearer(shop["admin"]))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "shipment_not_parked"
    await run_worker_until_idle(settings)
    booked = await get_json(client, shop["admin"], f"/orders/{order['id']}/shipment")
    assert booked["status"] == "booked"
    assert booked["courier"] == "local"
    assert (await get_json(client, shop["tech"], f"/orders/{order['id']}"))["needs_attention"] is None


async def test_a_booking_retried_after_a_crash_books_once(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    shop = await make_shop(client, settings, {"hamburg": HAMBURG})
    order = await printed_order(client, settings, shop)
    # A worker that took the booking, had the courier confirm it, and died before writing it down.
    engine = create_engine(settings.resolved_database_url)
    sessions = session_factory(engine)
    courier = LocalCourier(sessions)
    try:
        async with order_transaction(
            sessions,
            None,
            LocalBlobStore(settings.resolved_blob_dir),
            archive_limits=settings.archive_limits,
            snapshots=SnapshotCache(max_age_s=0),
        ) as orders:
            task = await ShippingService(orders).begin_booking(uuid.UUID(order["id"]), max_attempts=4)
        assert task is not None
        first = await courier.book(task.request)
    finally:
        await courier.aclose()
        await engine.dispose()

    await run_worker_until_idle(settings)  # the job, woken when the part was printed, books again
    shipment = await get_json(client, shop["tech"], f"/orders/{order['id']}/shipment")
    assert shipment["status"] == "booked"
    assert shipment["tracking_number"] == first.tracking_number
    assert shipment["attempts"] == 2
    assert await count(settings, LocalParcel) == 1
    assert await count(settings, ShipmentEvent) == 0


async def test_a_booking_whose_attempts_never_end_is_parked_not_retried_for_ever(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    shop = await make_shop(client, settings, {"hamburg": HAMBURG})
    order = await printed_order(client, settings, shop)
    engine = create_engine(settings.resolved_database_url)
    sessions = session_factory(engine)
    blobs = LocalBlobStore(settings.resolved_blob_dir)
    begun = []
    try:
        # Each attempt begins and then dies (a worker killed, an error that is no courier's): the reconciler
        # wakes the booking again every minute.
        for _ in range(3):
            async with order_transaction(
                sessions,
                None,
                blobs,
                archive_limits=settings.archive_limits,
                snapshots=SnapshotCache(max_age_s=0),
            ) as orders:
                task = await ShippingService(orders).begin_booking(uuid.UUID(order["id"]), max_attempts=2)
            begun.append(task is not None)
    finally:
        await engine.dispose()
    assert begun == [True, True, False]
    shipment = await get_json(client, shop["admin"], f"/orders/{order['id']}/shipment")
    assert (shipment["status"], shipment["attention_reason"], shipment["attempts"]) == (
        "needs_attention",
        "attempts_exhausted",
        2,
    )
    assert "2 booking attempts began" in shipment["last_error"]
    parked = await get_json(client, shop["tech"], f"/orders/{order['id']}")
    assert parked["needs_attention"] == "booking_attempts_exhausted"
