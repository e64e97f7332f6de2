"""Inbound webhooks that are signed correctly but cannot be applied: refused before the 202, or, when they
fail for a reason nobody foresaw, parked for an operator after a bounded number of attempts.

Each refused case was answered 202 and then failed every time the worker applied it (or, for Karrio, failed
with a 500 on receipt), and the reconciler re-enqueued it every minute for ever.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from parts_catalog.sqltypes import utcnow
from services.config import Settings
from services.db import create_engine, session_factory, transaction
from services.shipping.service import ShippingService
from services.webhooks.inbound.models import InboundStatus, InboundWebhook
from services.webhooks.inbound.service import InboundWebhooks
from services.workers.jobs import shipping as shipping_jobs
from tests.builders import bearer, make_admin_token
from tests.e2e.test_shipping import count, partner_secret, post_signed, rejections, tracking_body
from tests.workers import run_worker_until_idle

KARRIO_SECRET = "karrio-subscription-secret-1"


def karrio_tracker(number: str, **event: Any) -> dict[str, Any]:
    return {
        "event": "tracker_updated",
        "data": {"id": "trk_1", "tracking_number": number, "status": "in_transit", "events": [event]},
    }


# Aware times whose UTC instant lies outside what a datetime (and so a UTC column) can hold.
BEFORE_YEAR_1 = "0001-01-01T00:30:00+01:00"
AFTER_YEAR_9999 = "9999-12-31T23:30:00-01:00"


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"occurred_at": BEFORE_YEAR_1}, id="occurred_at-before-year-1"),
        pytest.param({"occurred_at": AFTER_YEAR_9999}, id="occurred_at-after-year-9999"),
        pytest.param({"estimated_delivery_at": AFTER_YEAR_9999}, id="estimated_delivery_at-after-year-9999"),
    ],
)
async def test_a_partner_event_whose_times_no_column_can_hold_is_refused_and_counted(
    client: httpx.AsyncClient, settings: Settings, extra: dict[str, str]
) -> None:
    admin = await make_admin_token(settings)
    secret = await partner_secret(client, admin, "acme-logistics")
    body = json.loads(tracking_body("TRK-1", "in_transit", utcnow()))
    body["data"].update(extra)
    before = rejections((await client.get("/metrics")).text)

    response = await post_signed(client, "acme-logistics", secret, json.dumps(body).encode())

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "webhook_payload_invalid"
    assert [d["loc"][-1] for d in error["details"]] == list(extra)
    key = ("acme-logistics", "invalid_payload")
    assert rejections((await client.get("/metrics")).text).get(key, 0) - before.get(key, 0) == 1
    assert await count(settings, InboundWebhook) == 0


@pytest.mark.parametrize(
    "event",
    [
        pytest.param({"timestamp": AFTER_YEAR_9999, "status": "in_transit"}, id="timestamp-after-year-9999"),
        pytest.param({"timestamp": BEFORE_YEAR_1, "status": "in_transit"}, id="timestamp-before-year-1"),
    ],
)
async def test_a_karrio_event_whose_times_no_column_can_hold_is_refused_and_counted(
    client: httpx.AsyncClient, settings: Settings, event: dict[str, str]
) -> None:
    admin = await make_admin_token(settings)
    await partner_secret(client, admin, "karrio", KARRIO_SECRET)
    before = rejections((await client.get("/metrics")).text)

    response = await client.post(
        "/webhooks/karrio", json=karrio_tracker("TRK-1", **event), headers={"X-Event-Id": KARRIO_SECRET}
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "webhook_payload_invalid"
    key = ("karrio", "invalid_payload")
    assert rejections((await client.get("/metrics")).text).get(key, 0) - before.get(key, 0) == 1
    assert await count(settings, InboundWebhook) == 0


async def test_a_karrio_estimate_no_column_can_hold_is_left_out_like_any_unreadable_estimate(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    admin = await make_admin_token(settings)
    await partner_secret(client, admin, "karrio", KARRIO_SECRET)
    body = karrio_tracker("TRK-1", timestamp=utcnow().isoformat(), status="in_transit")
    body["data"]["estimated_delivery"] = AFTER_YEAR_9999

    response = await client.post("/webhooks/karrio", json=body, headers={"X-Event-Id": KARRIO_SECRET})

    assert response.status_code == 202, response.text
    await run_worker_until_idle(settings)  # fails the test if the job fails


async def test_a_partner_format_event_from_the_karrio_partner_is_applied_as_it_was_read(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # The `karrio` partner may hold a `whsec_` secret too; its signed events are in the partner format, and
    # the worker used to read every `karrio` row as a Karrio body.
    admin = await make_admin_token(settings)
    secret = await partner_secret(client, admin, "karrio")
    body = tracking_body("TRK-1", "in_transit", utcnow() - timedelta(minutes=5))

    response = await post_signed(client, "karrio", secret, body)

    assert response.status_code == 202, response.text
    await run_worker_until_idle(settings)  # fails the test if the job fails


def inbound_gauge(metrics: str, status: str) -> float:
    found = re.search(rf'^spareflow_inbound_webhooks\{{status="{status}"\}} (\S+)$', metrics, re.MULTILINE)
    assert found, metrics
    return float(found[1])


async def test_an_event_that_fails_every_attempt_is_parked_shown_and_retried_by_an_operator(
    client: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await make_admin_token(settings)
    secret = await partner_secret(client, admin, "acme-logistics")
    body = tracking_body("TRK-1", "in_transit", utcnow() - timedelta(minutes=5))
    assert (await post_signed(client, "acme-logistics", secret, body)).status_code == 202

    async def broken(*_: Any, **__: Any) -> str:
        raise RuntimeError("the shipping tables are having a bad day")

    monkeypatch.setattr(ShippingService, "apply_tracking", broken)
    monkeypatch.setattr(shipping_jobs, "backoff_seconds", lambda attempt: 0.0)
    await run_worker_until_idle(settings)  # retried, then parked: the job ends, it does not fail

    parked = await client.get("/webhooks/inbound/parked", headers=bearer(admin))
    assert parked.status_code == 200, parked.text
    [row] = parked.json()
    assert row["status"] == "parked"
    assert row["attempts"] == settings.max_job_attempts
    assert row["last_error"] == "RuntimeError: the shipping tables are having a bad day"
    assert row["payload"] == json.loads(body)
    assert inbound_gauge((await client.get("/metrics")).text, "parked") == 1
    # The reconciler leaves it alone, and the purge keeps it past the deduplication window.
    later = utcnow() + timedelta(hours=settings.webhook_dedup_hours + 1)
    engine = create_engine(settings.resolved_database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            inbound = InboundWebhooks.configured(session, settings)
            assert await inbound.unprocessed(received_before=later, limit=10) == []
            assert await inbound.purge(now=later) == 0
    finally:
        await engine.dispose()

    monkeypatch.undo()  # the operator fixed the cause
    path = f"/webhooks/inbound/{row['id']}/retry"
    retried = await client.post(path, headers=bearer(admin))
    assert retried.status_code == 200, retried.text
    assert (retried.json()["status"], retried.json()["attempts"]) == ("received", 0)
    again = await client.post(path, headers=bearer(admin))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "inbound_webhook_not_parked"
    await run_worker_until_idle(settings)
    assert (await client.get("/webhooks/inbound/parked", headers=bearer(admin))).json() == []
    assert inbound_gauge((await client.get("/metrics")).text, "ignored") == 1  # not one of our numbers
    missing = await client.post(f"/webhooks/inbound/{uuid.uuid4()}/retry", headers=bearer(admin))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "inbound_webhook_not_found"


async def test_an_event_whose_workers_died_while_applying_it_is_parked_at_its_next_attempt(
    settings: Settings,
) -> None:
    engine = create_engine(settings.resolved_database_url)
    sessions = session_factory(engine)
    row = InboundWebhook(
        source="acme-logistics",
        event_id="msg_1",
        event_type="tracking.updated",
        payload={},
        attempts=settings.max_job_attempts,  # each begun, none recorded its end
    )
    try:
        async with transaction(sessions) as session:
            session.add(row)
        async with transaction(sessions) as session:
            inbound = InboundWebhooks.configured(session, settings)
            assert await inbound.begin(row.id, max_attempts=settings.max_job_attempts) is None
        async with transaction(sessions) as session:
            [parked] = await InboundWebhooks.configured(session, settings).parked()
    finally:
        await engine.dispose()
    assert parked.status is InboundStatus.PARKED
    assert (
        parked.last_error
        == f"no attempt of {settings.max_job_attempts} finished (a worker stopped during each)"
    )
