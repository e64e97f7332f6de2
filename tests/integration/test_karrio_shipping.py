"""A printed part ships through a real Karrio: the worker books it (label and tracking number from Karrio's
generic carrier), carrier events injected into Karrio's tracker reach our ``/webhooks/karrio`` as Karrio's
own webhooks over HTTP, and the order ends delivered.

Karrio is started once per session (``tests.peers.karrio_server``; skipped without ``../shared``) and sends
its webhooks inline, inside the request that injected the events. PostgreSQL only: the shipping logic is
the same on SQLite (``tests/e2e/test_shipping.py`` runs both), and Karrio costs real time.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import col, select

from services.api.background import serve_in_background
from services.config import Settings
from services.couriers.providers.karrio.gateway import KarrioCourier
from services.db import create_engine, session_factory, transaction
from services.webhooks.inbound.models import InboundStatus, InboundWebhook
from tests.builders import HAMBURG, bearer, get_json, make_account, make_shop, printed_order
from tests.peers import KarrioPeer
from tests.workers import run_worker_until_idle

pytestmark = pytest.mark.parametrize("migrated_url", ["postgresql"], indirect=True)

SITE_ADDRESS = {"lines": ["Am Sandtorkai 1"], "city": "Hamburg", "postal_code": "20457", "country": "DE"}


async def karrio_inbound(settings: Settings) -> list[InboundWebhook]:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            query = select(InboundWebhook).where(InboundWebhook.source == "karrio")
            return list((await session.exec(query.order_by(col(InboundWebhook.received_at)))).all())
    finally:
        await engine.dispose()


async def test_an_order_ships_through_karrio_and_its_webhooks_deliver_it(
    client: httpx.AsyncClient, settings: Settings, karrio_peer: KarrioPeer
) -> None:
    async with serve_in_background(settings, settings.redis_url) as base_url:
        worker = settings.model_copy(
            update={"karrio_url": karrio_peer.base_url, "karrio_token": SecretStr(karrio_peer.token)}
        )
        # What an operator does once: the carrier connection, and Karrio's webhooks to us with its secret.
        karrio = KarrioCourier(karrio_peer.base_url, karrio_peer.token)
        try:
            await karrio.ensure_generic_connection()
            _, secret = await karrio.subscribe_webhook(f"{base_url}/webhooks/karrio")
        finally:
            await karrio.aclose()
        shop = await make_shop(client, worker, {"hamburg": HAMBURG}, courier="karrio", address=SITE_ADDRESS)
        partner = await make_account(client, shop["admin"], "partners", slug="karrio")
        registered = await client.post(
            f"/partners/{partner['id']}/webhook-secrets",
            json={"secret": secret},
            headers=bearer(shop["admin"]),
        )
        assert registered.status_code == 201, registered.text

        order_id = (await printed_order(client, worker, shop))["id"]
        await run_worker_until_idle(worker)  # books with Karrio

        shipment = await get_json(client, shop["tech"], f"/orders/{order_id}/shipment")
        assert shipment["status"] == "booked", shipment
        assert shipment["courier"] == "karrio"
        assert shipment["courier_shipment_id"].startswith("shp_")
        assert shipment["tracking_number"]
        label = await client.get(f"/orders/{order_id}/shipment/label", headers=bearer(shop["tech"]))
        assert label.status_code == 200
        assert label.content.startswith(b"%PDF")

        tracker = await asyncio.to_thread(karrio_peer.make_tracker, shipment["courier_shipment_id"])
        # After the tracker's own label-created event, which Karrio stamps with the time it was made.
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        for minutes, status in ((0, "in_transit"), (1, "out_for_delivery"), (2, "delivered")):
            at = start + timedelta(minutes=minutes)
            await asyncio.to_thread(karrio_peer.scan, tracker, status, at, location="Norderstedt depot")
        received = await karrio_inbound(settings)
        assert any(row.event_type == "tracker_updated" for row in received), [r.event_type for r in received]
        await run_worker_until_idle(worker)

        order = await get_json(client, shop["tech"], f"/orders/{order_id}")
        assert order["status"] == "delivered", order
        assert order["needs_attention"] is None
        shipment = await get_json(client, shop["tech"], f"/orders/{order_id}/shipment")
        assert shipment["tracking_status"] == "delivered"
        statuses = [e["status"] for e in shipment["events"]]
        assert statuses[-1] == "delivered"
        assert "out_for_delivery" in statuses
        processed = await karrio_inbound(settings)
        assert all(row.status is not InboundStatus.RECEIVED for row in processed)
        timeline = await get_json(client, shop["tech"], f"/orders/{order_id}/timeline")
        assert [e["kind"] for e in timeline["entries"]][-1] in {"delivered", "tracking_delivered"}

        # Karrio's secret is the only credential its webhooks carry: anything else is refused.
        forged = await client.post(
            "/webhooks/karrio", json={"event": "tracker_updated", "data": {}}, headers={"X-Event-Id": "guess"}
        )
        assert forged.status_code == 401
        assert forged.json()["error"]["code"] == "webhook_signature_invalid"
