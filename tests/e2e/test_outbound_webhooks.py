"""Outbound webhooks end to end: the API registers an endpoint, orders produce events, the real worker
delivers them to a real HTTP receiver on loopback that verifies every request with the Standard Webhooks
reference library (``standardwebhooks``), not with our own code."""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from arq import create_pool
from arq.connections import RedisSettings
from redis.asyncio import Redis
from sqlmodel import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from parts_catalog.sqltypes import utcnow
from parts_catalog.storage import LocalBlobStore
from services.config import Settings
from services.db import create_engine, session_factory, transaction
from services.fulfilment.unit_of_work import order_transaction
from services.orders.events import PUBLISH_ORDER_EVENTS
from services.orders.models import Order, OrderEvent
from services.routing.snapshot import SnapshotCache
from services.webhooks.outbound import events as notification_events
from services.webhooks.outbound import service as notification_service
from services.webhooks.outbound.models import DeliveryStatus
from services.webhooks.outbound.service import ClaimedAttempt, Held, WebhookPolicy, WebhookService
from services.workers.settings import build_worker
from tests.builders import (
    HAMBURG,
    app_client,
    bearer,
    make_account,
    make_admin_token,
    make_factory,
    make_key,
    make_part,
    model_bytes,
    order_body,
    place_order,
    upload,
)
from tests.conftest import REDIS_URL


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival
    payload: Any = None  # the parsed body, if a secret verified it
    verified_by: list[int] = field(default_factory=list)  # indexes of the secrets that verify it
    errors: list[str] = field(default_factory=list)


class Receiver:
    """A customer's system: uvicorn in a thread, answering each POST with the next planned status."""

    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.plan: list[int] = []  # statuses for the next requests, in order
        self.default_status = 200
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            interface="asgi3",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            ws="none",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def url(self, path: str = "/hooks/spareflow") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the receiver did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        received = Received(path=scope["path"], headers=headers, body=body, at=time.monotonic())
        with self._lock:
            for index, secret in enumerate(self.secrets):
                try:
                    received.payload = Webhook(secret).verify(body, headers)
                    received.verified_by.append(index)
                except WebhookVerificationError as exc:
                    received.errors.append(str(exc))
            self.requests.append(received)
            status = self.plan.pop(0) if self.plan else self.default_status
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"thanks"})

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
async def drop_leftover_jobs(settings: Settings) -> AsyncIterator[None]:
    """After the test, remove what its queue still holds with the jobs' keys: arq keys jobs by id per Redis
    database, not per queue, and the publisher's wake-up has one constant id, which a job left queued here
    would hold for a day against every other queue on this database."""
    yield
    redis = Redis.from_url(REDIS_URL)
    try:
        left = await redis.zrange(settings.queue_name, 0, -1)
        await redis.delete(settings.queue_name, *[b"arq:job:" + job_id for job_id in left])
    finally:
        await redis.aclose()


def hook_settings(settings: Settings, **overrides: Any) -> Settings:
    """The test's settings with loopback targets allowed and retries in fractions of a second."""
    values: dict[str, Any] = {
        "webhooks_allow_private_targets": True,
        "webhook_retry_schedule_s": [0.3, 0.6, 0.3, 0.3],
        "webhook_disable_after_failures": 15,
        "webhook_timeout_s": 5.0,
        **overrides,
    }
    return settings.model_copy(update=values)


@pytest.fixture
def hooks(settings: Settings) -> Settings:
    return hook_settings(settings)


@pytest.fixture
async def api(hooks: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(hooks) as http:
        yield http


async def run_worker(settings: Settings, *, crons: bool = True) -> int:
    """The real worker (functions, settings) in burst mode on the test's queue until the queue is empty.

    A burst worker runs only the start-up crons (the reconcilers); ``crons=False`` drops those too, for
    tests that must see what wake-ups alone do.
    """
    assert settings.redis_url
    worker = build_worker(settings, settings.redis_url, burst=True, handle_signals=False)
    if not crons:
        worker.cron_jobs = []
    try:
        await worker.async_run()
    finally:
        await worker.close()
    assert worker.jobs_failed == 0, f"{worker.jobs_failed} jobs failed"
    return worker.jobs_complete


async def make_webhook_shop(api: httpx.AsyncClient, settings: Settings) -> dict[str, Any]:
    """An organization with a technician and a checked part, and one round-the-clock site in Hamburg."""
    admin = await make_admin_token(settings)
    org = await make_account(api, admin, "organizations")
    part = await make_part(api, admin, organization_id=org["id"], part_number="BR-1")
    response = await upload(api, admin, part["id"], model_bytes())
    assert response.status_code == 202, response.text
    await run_worker(settings, crons=False)
    revision = await api.get(f"/parts/{part['id']}/revisions/{response.json()['id']}", headers=bearer(admin))
    assert revision.json()["status"] == "ready", revision.text
    await make_factory(api, admin, "hamburg", HAMBURG)
    tech = await make_key(api, admin, "technician", organization_id=org["id"])
    return {"admin": admin, "org": org, "tech": tech}


@pytest.fixture
async def shop(api: httpx.AsyncClient, hooks: Settings) -> dict[str, Any]:
    return await make_webhook_shop(api, hooks)


async def _register(
    api: httpx.AsyncClient, token: str, url: str, receiver: Receiver | None = None, **extra: Any
) -> dict[str, Any]:
    response = await api.post("/webhook-endpoints", json={"url": url, **extra}, headers=bearer(token))
    assert response.status_code == 201, response.text
    created = dict(response.json())
    if receiver is not None:
        receiver.secrets = [created["secret"]]
    return created


async def _order(api: httpx.AsyncClient, shop: dict[str, Any]) -> dict[str, Any]:
    response = await place_order(api, shop["tech"], order_body("BR-1", HAMBURG))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _deliveries(api: httpx.AsyncClient, token: str, endpoint_id: str) -> list[dict[str, Any]]:
    response = await api.get(f"/webhook-endpoints/{endpoint_id}/deliveries", headers=bearer(token))
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def _endpoint(api: httpx.AsyncClient, token: str, endpoint_id: str) -> dict[str, Any]:
    response = await api.get(f"/webhook-endpoints/{endpoint_id}", headers=bearer(token))
    assert response.status_code == 200, response.text
    return dict(response.json())


def _parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


async def test_an_order_event_reaches_the_endpoint_signed_and_once(
    api: httpx.AsyncClient, shop: dict[str, Any], hooks: Settings, receiver: Receiver
) -> None:
    endpoint = await _register(api, shop["tech"], receiver.url(), receiver, description="ERP")
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["organization_id"] == shop["org"]["id"]
    assert "secret" not in await _endpoint(api, shop["tech"], endpoint["id"])

    order = await _order(api, shop)
    await run_worker(hooks)

    # Preparation moved the order on (preparing, ready_for_print): internal events, not published.
    assert (await api.get(f"/orders/{order['id']}", headers=bearer(shop["tech"]))).json()["status"] == (
        "ready_for_print"
    )
    [request] = receiver.received()
    assert request.verified_by == [0], request.errors
    assert request.path == "/hooks/spareflow"
    assert request.headers["content-type"] == "application/json"
    assert b": " not in request.body  # compact JSON
    assert b", " not in request.body
    payload = request.payload
    assert payload["type"] == "order.routed"
    assert payload["data"]["order_id"] == order["id"]
    assert payload["data"]["organization_id"] == shop["org"]["id"]
    assert payload["data"]["status"] == "routed"
    event = payload["data"]["event"]
    assert (event["kind"], event["from_status"], event["to_status"]) == ("routed", "received", "routed")
    assert event["data"]["site"] == "hamburg"
    events = (await api.get(f"/orders/{order['id']}/events", headers=bearer(shop["tech"]))).json()
    routed = next(e for e in events if e["kind"] == "routed")
    assert _parse(payload["timestamp"]) == _parse(routed["at"]) == _parse(event["at"])
    assert request.headers["webhook-id"].startswith("evt_")

    await run_worker(hooks)  # the reconciler finds nothing more to send
    assert len(receiver.received()) == 1
    [delivery] = await _deliveries(api, shop["tech"], endpoint["id"])
    assert delivery["status"] == "delivered"
    assert delivery["msg_id"] == request.headers["webhook-id"]
    assert delivery["attempts"] == 1
    assert [a["status_code"] for a in delivery["attempt_log"]] == [200]
    assert delivery["payload"] == payload


async def test_a_failing_endpoint_is_retried_on_schedule_until_it_recovers(
    api: httpx.AsyncClient, shop: dict[str, Any], hooks: Settings, receiver: Receiver
) -> None:
    endpoint = await _register(api, shop["tech"], receiver.url(), receiver)
    receiver.plan = [500, 503]
    await _order(api, shop)
    await run_worker(hooks)

    requests = receiver.received()
    assert len(requests) == 3
    assert all(r.verified_by == [0] for r in requests), [r.errors for r in requests]
    assert len({r.headers["webhook-id"] for r in requests}) == 1  # one event, one id on every attempt
    assert len({r.body for r in requests}) == 1
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(requests)]
    schedule = hooks.webhook_retry_schedule_s
    assert gaps[0] >= schedule[0] - 0.05, gaps
    assert gaps[1] >= schedule[1] - 0.05, gaps

    [delivery] = await _deliveries(api, shop["tech"], endpoint["id"])
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 3
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 503, 200]
    assert [a["error"] for a in delivery["attempt_log"]] == ["HTTP 500", "HTTP 503", None]
    assert delivery["last_status_code"] == 200
    assert delivery["next_attempt_at"] is None
    assert (await _endpoint(api, shop["tech"], endpoint["id"]))["consecutive_failures"] == 0


async def test_a_delivery_fails_after_the_last_attempt_of_the_schedule(
    settings: Settings, receiver: Receiver
) -> None:
    hooks = hook_settings(settings, webhook_retry_schedule_s=[0.1, 0.1])
    async with app_client(hooks) as api:
        shop = await make_webhook_shop(api, hooks)
        endpoint = await _register(api, shop["tech"], receiver.url(), receiver)
        receiver.default_status = 500
        await _order(api, shop)
        await run_worker(hooks)
        assert len(receiver.received()) == 3  # the first attempt and two retries
        [delivery] = await _deliveries(api, shop["tech"], endpoint["id"])
        assert delivery["status"] == "failed"
        assert delivery["next_attempt_at"] is None
        assert (await _endpoint(api, shop["tech"], endpoint["id"]))["enabled"] is True


async def test_repeated_failures_disable_the_endpoint_and_abandon_its_deliveries(
    settings: Settings, receiver: Receiver
) -> None:
    hooks = hook_settings(settings, webhook_disable_after_failures=3, webhook_retry_schedule_s=[0.2] * 6)
    async with app_client(hooks) as api:
        shop = await make_webhook_shop(api, hooks)
        endpoint = await _register(api, shop["tech"], receiver.url(), receiver)
        receiver.default_status = 500
        first, second = await _order(api, shop), await _order(api, shop)
        await run_worker(hooks)

        assert len(receiver.received()) == 3  # two first attempts and one retry: three in a row
        disabled = await _endpoint(api, shop["tech"], endpoint["id"])
        assert disabled["enabled"] is False
        assert disabled["consecutive_failures"] == 3
        assert disabled["disabled_reason"].startswith("3 consecutive failed attempts")
        log = await _deliveries(api, shop["tech"], endpoint["id"])
        assert {d["order_id"] for d in log} == {first["id"], second["id"]}
        assert [d["status"] for d in log] == ["abandoned", "abandoned"]
        assert all(d["next_attempt_at"] is None for d in log)

        # Disabled: a new order's event goes nowhere, and nothing is retried.
        await _order(api, shop)
        await run_worker(hooks)
        assert len(receiver.received()) == 3
        assert len(await _deliveries(api, shop["tech"], endpoint["id"])) == 2

        enabled = await api.post(f"/webhook-endpoints/{endpoint['id']}/enable", headers=bearer(shop["tech"]))
        assert enabled.status_code == 200, enabled.text
        assert enabled.json()["enabled"] is True
        assert enabled.json()["consecutive_failures"] == 0
        assert enabled.json()["disabled_reason"] is None
        receiver.default_status = 200
        fourth = await _order(api, shop)
        await run_worker(hooks)
        [request] = receiver.received()[3:]
        assert request.verified_by == [0]
        assert request.payload["data"]["order_id"] == fourth["id"]
        statuses = [d["status"] for d in await _deliveries(api, shop["tech"], endpoint["id"])]
        assert statuses == ["delivered", "abandoned", "abandoned"]  # newest first


async def test_an_endpoint_receives_only_the_event_types_it_subscribed_to(
    api: httpx.AsyncClient, shop: dict[str, Any], hooks: Settings, receiver: Receiver
) -> None:
    await _register(api, shop["tech"], receiver.url(), receiver, event_types=["order.cancelled"])
    order = await _order(api, shop)
    cancelled = await api.post(f"/orders/{order['id']}/cancel", json={}, headers=bearer(shop["tech"]))
    assert cancelled.status_code == 200, cancelled.text
    await run_worker(hooks)
    [request] = receiver.received()
    assert request.payload["type"] == "order.cancelled"
    assert request.payload["data"]["status"] == "cancelled"
    assert request.payload["data"]["event"]["reason"] == "customer"


async def test_after_a_rotation_both_secrets_sign_each_webhook(
    api: httpx.AsyncClient, shop: dict[str, Any], hooks: Settings, receiver: Receiver
) -> None:
    endpoint = await _register(api, shop["tech"], receiver.url(), receiver)
    rotated = await api.post(
        f"/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=bearer(shop["tech"])
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_")
    assert new_secret != endpoint["secret"]
    assert _parse(rotated.json()["previous_secret_expires_at"]) > utcnow() + timedelta(hours=23)
    receiver.secrets = [endpoint["secret"], new_secret]
    await _order(api, shop)
    await run_worker(hooks)
    [request] = receiver.received()
    assert request.verified_by == [0, 1], request.errors
    assert len(request.headers["webhook-signature"].split(" ")) == 2


async def test_lost_wake_ups_are_made_good_by_the_reconciler(
    api: httpx.AsyncClient, shop: dict[str, Any], hooks: Settings, receiver: Receiver
) -> None:
    await _register(api, shop["tech"], receiver.url(), receiver)
    order = await _order(api, shop)
    # Redis loses every queued job of the test's queue (the publisher's wake-up, if it was enqueued, and the
    # print preparation) with its job key.
    redis = Redis.from_url(REDIS_URL)
    try:
        lost = await redis.zrange(hooks.queue_name, 0, -1)
        assert lost
        await redis.delete(hooks.queue_name, *[b"arq:job:" + job_id for job_id in lost])
    finally:
        await redis.aclose()
    await run_worker(hooks)  # its reconciler runs at start-up
    [request] = receiver.received()
    assert request.payload["data"]["order_id"] == order["id"]


class RecordingQueue:
    """Stands in for arq: records what a transaction sends after its commit."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[Any, ...], str | None]] = []

    async def enqueue_job(self, function: str, *args: Any, _job_id: str | None = None, **_: Any) -> None:
        self.sent.append((function, args, _job_id))


async def test_a_published_event_wakes_the_publisher_after_the_commit_and_only_then(
    api: httpx.AsyncClient, shop: dict[str, Any], hooks: Settings
) -> None:
    order = await _order(api, shop)
    engine = create_engine(hooks.resolved_database_url)
    sessions, blobs = session_factory(engine), LocalBlobStore(hooks.resolved_blob_dir)

    def orders_in(queue: Any) -> Any:
        return order_transaction(
            sessions, queue, blobs, archive_limits=hooks.archive_limits, snapshots=SnapshotCache(max_age_s=0)
        )

    def wake_ups(queue: RecordingQueue) -> list[tuple[str, tuple[Any, ...], str | None]]:
        return [sent for sent in queue.sent if sent[0] == PUBLISH_ORDER_EVENTS]

    async def cancel_then_fail(queue: RecordingQueue) -> None:
        async with orders_in(queue) as orders:
            await orders.cancel(uuid.UUID(order["id"]), visible_to=None, reason="")
            raise RuntimeError("rolled back")

    try:
        queue = RecordingQueue()
        with pytest.raises(RuntimeError):
            await cancel_then_fail(queue)
        assert wake_ups(queue) == []
        async with orders_in(queue) as orders:
            await orders.cancel(uuid.UUID(order["id"]), visible_to=None, reason="")
        assert wake_ups(queue) == [(PUBLISH_ORDER_EVENTS, (), PUBLISH_ORDER_EVENTS)]
    finally:
        await engine.dispose()


async def test_wake_ups_alone_deliver_without_the_reconciler(
    api: httpx.AsyncClient, shop: dict[str, Any], hooks: Settings, receiver: Receiver
) -> None:
    await _register(api, shop["tech"], receiver.url(), receiver)
    order = await _order(api, shop)
    # The API's wake-up has one constant id, and arq's job ids are per Redis database, not per queue: a
    # concurrent test session on this database may hold it. This wake-up's id is the test's own.
    pool = await create_pool(RedisSettings.from_dsn(REDIS_URL), default_queue_name=hooks.queue_name)
    try:
        await pool.enqueue_job(PUBLISH_ORDER_EVENTS, _job_id=f"{PUBLISH_ORDER_EVENTS}:{uuid.uuid4()}")
    finally:
        await pool.aclose()
    await run_worker(hooks, crons=False)
    [request] = receiver.received()
    assert request.payload["data"]["order_id"] == order["id"]
    assert request.verified_by == [0]


async def _services(settings: Settings) -> Any:
    engine = create_engine(settings.resolved_database_url)
    return engine, session_factory(engine)


async def test_a_worker_killed_mid_attempt_leaves_the_delivery_due_again(
    api: httpx.AsyncClient, shop: dict[str, Any], hooks: Settings, receiver: Receiver
) -> None:
    endpoint = await _register(api, shop["tech"], receiver.url(), receiver)
    await _order(api, shop)
    policy = WebhookPolicy.of(hooks)
    engine, sessions = await _services(hooks)
    try:
        async with transaction(sessions) as session:
            assert (await WebhookService(session, policy).publish_pending(limit=100)).deliveries == 1
        async with transaction(sessions) as session:
            [(delivery_id, made)] = await WebhookService(session, policy).due_deliveries(
                now=utcnow(), limit=10
            )
        assert made == 0
        async with transaction(sessions) as session:
            claimed = await WebhookService(session, policy).begin_attempt(delivery_id)
        assert isinstance(claimed, ClaimedAttempt)
        assert claimed.number == 1
        # The worker dies here, before sending. While the claim holds, nobody else attempts it...
        async with transaction(sessions) as session:
            service = WebhookService(session, policy)
            assert await service.due_deliveries(now=utcnow(), limit=10) == []
            assert await service.begin_attempt(delivery_id) is None
        # ...and once it lapses, the delivery is due again, and the next attempt is attempt 2.
        later = utcnow() + policy.claim + timedelta(seconds=1)
        async with transaction(sessions) as session:
            service = WebhookService(session, policy)
            assert await service.due_deliveries(now=later, limit=10) == [(delivery_id, 1)]
            again = await service.begin_attempt(delivery_id, now=later)
        assert isinstance(again, ClaimedAttempt)
        assert again.number == 2
    finally:
        await engine.dispose()
    log = await _deliveries(api, shop["tech"], endpoint["id"])
    assert log[0]["status"] == DeliveryStatus.PENDING
    assert log[0]["attempts"] == 2


async def test_a_delivery_whose_every_attempt_dies_fails_after_the_last_one(
    api: httpx.AsyncClient, shop: dict[str, Any], hooks: Settings, receiver: Receiver
) -> None:
    endpoint = await _register(api, shop["tech"], receiver.url(), receiver)
    await _order(api, shop)
    policy = WebhookPolicy.of(hooks)
    engine, sessions = await _services(hooks)
    now = utcnow()
    claims = []
    try:
        async with transaction(sessions) as session:
            assert (await WebhookService(session, policy).publish_pending(limit=100)).deliveries == 1
        async with transaction(sessions) as session:
            [(delivery_id, _)] = await WebhookService(session, policy).due_deliveries(now=utcnow(), limit=10)
        # Every attempt's worker dies before recording the outcome; the reconciler finds it due each time.
        for _ in range(policy.max_attempts + 1):
            now += policy.claim + timedelta(seconds=1)
            async with transaction(sessions) as session:
                claimed = await WebhookService(session, policy).begin_attempt(delivery_id, now=now)
            claims.append(claimed.number if isinstance(claimed, ClaimedAttempt) else None)
        async with transaction(sessions) as session:
            assert (
                await WebhookService(session, policy).due_deliveries(now=now + policy.claim, limit=10) == []
            )
    finally:
        await engine.dispose()
    assert claims == [*range(1, policy.max_attempts + 1), None]
    [delivery] = await _deliveries(api, shop["tech"], endpoint["id"])
    assert (delivery["status"], delivery["attempts"]) == (DeliveryStatus.FAILED, policy.max_attempts)
    assert delivery["last_error"] == f"no outcome recorded for the last of {policy.max_attempts} attempts"


async def test_concurrent_publishers_fan_each_event_out_once(
    api: httpx.AsyncClient, shop: dict[str, Any], hooks: Settings, receiver: Receiver
) -> None:
    endpoint = await _register(api, shop["tech"], receiver.url(), receiver)
    orders = [await _order(api, shop) for _ in range(3)]
    policy = WebhookPolicy.of(hooks)
    engine, sessions = await _services(hooks)

    async def publish() -> int:
        async with transaction(sessions) as session:
            return (await WebhookService(session, policy).publish_pending(limit=100)).deliveries

    try:
        assert sum(await asyncio.gather(publish(), publish(), publish())) == 3
        assert await publish() == 0
    finally:
        await engine.dispose()
    log = await _deliveries(api, shop["tech"], endpoint["id"])
    assert sorted(d["order_id"] for d in log) == sorted(o["id"] for o in orders)


FORBIDDEN = [
    ("http://127.0.0.1:8080/hook", "loopback"),
    ("http://localhost/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://10.0.0.1/", "private"),
    ("https://192.168.1.20/hooks", "private"),
    ("http://100.64.0.1/", "shared_address"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://2130706433/", "loopback"),  # 127.0.0.1 as one decimal number
]


async def test_private_and_metadata_targets_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    assert settings.webhooks_allow_private_targets is False
    admin = await make_admin_token(settings)
    org = await make_account(client, admin, "organizations")
    tech = await make_key(client, admin, "technician", organization_id=org["id"])
    for url, reason in FORBIDDEN:
        response = await client.post("/webhook-endpoints", json={"url": url}, headers=bearer(tech))
        assert response.status_code == 422, (url, response.text)
        error = response.json()["error"]
        assert error["code"] == "webhook_target_forbidden", url
        assert error["details"]["reason"] == reason, (url, error)
    # Metadata addresses stay refused even where private targets are allowed.
    async with app_client(hook_settings(settings)) as lenient:
        response = await lenient.post(
            "/webhook-endpoints", json={"url": "http://169.254.169.254/"}, headers=bearer(tech)
        )
        assert response.status_code == 422
        assert response.json()["error"]["details"]["reason"] == "metadata"
    assert (await client.get("/webhook-endpoints", headers=bearer(tech))).json() == []


BAD_BODIES = [
    ({"url": "not a url"}, "invalid_webhook_url"),
    ({"url": "ftp://example.com/hooks"}, "invalid_webhook_url"),
    ({"url": "https://user:secret@example.com/hooks"}, "invalid_webhook_url"),
    ({"url": "http:///hooks"}, "invalid_webhook_url"),
    ({"url": ""}, "validation_error"),
    ({"url": "https://example.com/" + "a" * 2000}, "validation_error"),
    ({"url": "https://example.com/", "event_types": ["order.exploded"]}, "validation_error"),
    ({"url": "https://example.com/", "event_types": "order.routed"}, "validation_error"),
    ({"url": "https://example.com/", "colour": "blue"}, "validation_error"),
    ({"description": "no url"}, "validation_error"),
]


async def test_bad_input_is_refused_with_a_code(client: httpx.AsyncClient, settings: Settings) -> None:
    admin = await make_admin_token(settings)
    org = await make_account(client, admin, "organizations")
    tech = await make_key(client, admin, "technician", organization_id=org["id"])
    for body, code in BAD_BODIES:
        response = await client.post("/webhook-endpoints", json=body, headers=bearer(tech))
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["code"] == code, (body, response.text)
    # Operators name the organization; an unknown one is 404.
    response = await client.post(
        "/webhook-endpoints", json={"url": "http://93.184.216.34/"}, headers=bearer(admin)
    )
    assert response.json()["error"]["code"] == "organization_required"
    response = await client.post(
        "/webhook-endpoints",
        json={"url": "http://93.184.216.34/", "organization_id": str(uuid.uuid4())},
        headers=bearer(admin),
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "organization_not_found"
    too_small = await client.get(
        f"/webhook-endpoints/{uuid.uuid4()}/deliveries?limit=0", headers=bearer(tech)
    )
    assert too_small.status_code == 422
    assert (await client.get("/webhook-endpoints", headers=bearer(admin))).json() == []


async def test_another_organization_can_neither_see_nor_change_the_endpoint(
    api: httpx.AsyncClient, hooks: Settings, receiver: Receiver
) -> None:
    admin = await make_admin_token(hooks)
    org_a = await make_account(api, admin, "organizations")
    org_b = await make_account(api, admin, "organizations")
    tech_a = await make_key(api, admin, "technician", organization_id=org_a["id"])
    tech_b = await make_key(api, admin, "technician", organization_id=org_b["id"])
    endpoint = await _register(api, tech_a, receiver.url())
    path = f"/webhook-endpoints/{endpoint['id']}"
    for method, url in [
        ("GET", path),
        ("GET", f"{path}/deliveries"),
        ("POST", f"{path}/enable"),
        ("POST", f"{path}/rotate-secret"),
        ("DELETE", path),
    ]:
        response = await api.request(method, url, headers=bearer(tech_b))
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["error"]["code"] == "webhook_endpoint_not_found"
    assert (await api.get("/webhook-endpoints", headers=bearer(tech_b))).json() == []
    # Nor register one for the other organization.
    response = await api.post(
        "/webhook-endpoints",
        json={"url": receiver.url(), "organization_id": org_a["id"]},
        headers=bearer(tech_b),
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "organization_not_found"

    # The owner and operators still see it; an operator registers for any organization.
    assert (await _endpoint(api, tech_a, endpoint["id"]))["url"] == receiver.url()
    assert [e["id"] for e in (await api.get("/webhook-endpoints", headers=bearer(admin))).json()] == [
        endpoint["id"]
    ]
    for_b = await _register(api, admin, receiver.url(), organization_id=org_b["id"])
    assert for_b["organization_id"] == org_b["id"]

    deleted = await api.delete(path, headers=bearer(tech_a))
    assert deleted.status_code == 204
    assert (await api.get(path, headers=bearer(tech_a))).status_code == 404
    assert [e["id"] for e in (await api.get("/webhook-endpoints", headers=bearer(admin))).json()] == [
        for_b["id"]
    ]


async def test_the_delivery_log_pages_newest_first(
    api: httpx.AsyncClient, shop: dict[str, Any], hooks: Settings, receiver: Receiver
) -> None:
    endpoint = await _register(api, shop["tech"], receiver.url(), receiver)
    orders = [await _order(api, shop) for _ in range(3)]
    await run_worker(hooks)
    assert len(receiver.received()) == 3
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(3):
        query = f"?limit=2&cursor={cursor}" if cursor else "?limit=2"
        response = await api.get(
            f"/webhook-endpoints/{endpoint['id']}/deliveries{query}", headers=bearer(shop["tech"])
        )
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [d["order_id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(o["id"] for o in orders)
    assert len(seen) == 3
    log = await _deliveries(api, shop["tech"], endpoint["id"])
    created = [_parse(d["created_at"]) for d in log]
    assert created == sorted(created, reverse=True)


async def test_customers_see_what_is_meant_for_them_and_operators_see_the_record(
    api: httpx.AsyncClient, hooks: Settings, shop: dict[str, Any], receiver: Receiver
) -> None:
    """A site completes a print with notes of its own: the technician's events, timeline and the
    ``order.printed`` webhook carry the weight, never the notes, the fence or the lease token's hash;
    the operator's events keep the site's report."""
    await _register(api, shop["tech"], receiver.url(), receiver)
    order = await _order(api, shop)
    await run_worker(hooks)
    site_id = order["routing"]["quote"]["site_id"]
    factory = await make_key(api, shop["admin"], "factory", site_id=site_id)
    printer_id = order["routing"]["quote"]["printer_id"]
    claimed = await api.post("/factory/jobs/claim", json={"printer_id": printer_id}, headers=bearer(factory))
    assert claimed.status_code == 200, claimed.text
    job, lease = claimed.json()["job"], claimed.json()["lease"]
    notes = "operator Jo: nozzle clogged once, reprinted layer 40"
    done = await api.post(
        f"/factory/jobs/{job['id']}/complete",
        json={
            "token": lease["token"],
            "part_weight_g": 12.5,
            "qa_checks": [{"name": "dimensions", "passed": True}],
            "notes": notes,
        },
        headers=bearer(factory),
    )
    assert done.status_code == 200, done.text
    await run_worker(hooks)  # the start-up reconciler publishes what the coalesced wake-up may not

    internal = (notes, "fence", "token_sha256", "fingerprint", "claimed_by", lease["token"])
    seen_by_customer = {
        "events": (await api.get(f"/orders/{order['id']}/events", headers=bearer(shop["tech"]))).text,
        "timeline": (await api.get(f"/orders/{order['id']}/timeline", headers=bearer(shop["tech"]))).text,
        "webhooks": "".join(r.body.decode() for r in receiver.received()),
    }
    for surface, text in seen_by_customer.items():
        assert '"part_weight_g":12.5' in text, surface
        assert [word for word in internal if word in text] == [], surface
    printed = [r.payload for r in receiver.received() if r.payload["type"] == "order.printed"]
    assert [p["data"]["event"]["data"] for p in printed] == [{"part_weight_g": 12.5}]

    events = (await api.get(f"/orders/{order['id']}/events", headers=bearer(shop["admin"]))).json()
    record = next(e for e in events if e["kind"] == "printed")["data"]
    assert (record["notes"], record["fence"], record["part_weight_g"]) == (notes, 1, 12.5)
    assert "token_sha256" not in record
    assert "fingerprint" not in record


async def test_an_event_that_cannot_be_rendered_is_marked_failed_and_the_others_go_out(
    api: httpx.AsyncClient,
    shop: dict[str, Any],
    hooks: Settings,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint = await _register(api, shop["tech"], receiver.url(), receiver)
    first, second = await _order(api, shop), await _order(api, shop)
    render = notification_events.payload_of

    def payload_of(event: OrderEvent, order: Order, event_type: Any) -> dict[str, Any]:
        if str(order.id) == first["id"]:
            raise ValueError("cannot render this event")
        return render(event, order, event_type)

    monkeypatch.setattr(notification_service, "payload_of", payload_of)
    engine, sessions = await _services(hooks)
    try:
        published = []
        for _ in range(2):  # the second run finds nothing left: the bad event is not retried
            async with transaction(sessions) as session:
                outcome = await WebhookService(session, WebhookPolicy.of(hooks)).publish_pending(limit=100)
            published.append((outcome.events, outcome.deliveries))
        async with transaction(sessions) as session:
            events = (await session.exec(select(OrderEvent).where(OrderEvent.kind == "routed"))).all()
    finally:
        await engine.dispose()
    assert published[0][1] == 1
    assert published[1] == (0, 0)
    errors = {str(event.order_id): (event.published_at is not None, event.publish_error) for event in events}
    assert errors == {
        first["id"]: (True, "ValueError: cannot render this event"),
        second["id"]: (True, None),
    }
    [delivery] = await _deliveries(api, shop["tech"], endpoint["id"])
    assert delivery["order_id"] == second["id"]


async def test_a_failing_endpoint_never_has_more_attempts_in_flight_than_failures_left(
    api: httpx.AsyncClient, shop: dict[str, Any], hooks: Settings, receiver: Receiver
) -> None:
    """The race behind an endpoint receiving one failed attempt more than ``disable_after``: attempts that
    began while it had failures left, each failing after the one that disabled it. Here two deliveries are
    due at once to an endpoint one failure from being disabled: the second attempt is held, not begun."""
    endpoint = await _register(api, shop["tech"], receiver.url(), receiver)
    await _order(api, shop)
    await _order(api, shop)
    policy = WebhookPolicy.of(hooks)
    engine = create_engine(hooks.resolved_database_url)
    sessions = session_factory(engine)
    try:
        async with transaction(sessions) as session:
            service = WebhookService(session, policy)
            await service.publish_pending(limit=10)
            row = await service.repo.endpoint(uuid.UUID(endpoint["id"]), for_update=True)
            assert row is not None
            row.consecutive_failures = policy.disable_after - 1
        async with transaction(sessions) as session:
            due = await WebhookService(session, policy).due_deliveries(now=utcnow(), limit=10)
        assert len(due) == 2
        (first, _), (second, _) = due
        async with transaction(sessions) as session:
            claimed = await WebhookService(session, policy).begin_attempt(first)
        assert isinstance(claimed, ClaimedAttempt)
        async with transaction(sessions) as session:
            held = await WebhookService(session, policy).begin_attempt(second)
        assert isinstance(held, Held)
        assert held.until > utcnow()
    finally:
        await engine.dispose()
