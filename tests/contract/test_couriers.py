"""The Courier contract, run against every adapter; then what is the Karrio adapter's own.

Each adapter enters through a harness (``HARNESSES``): the courier, places and a parcel it serves, and
``move`` to make the courier's side advance a parcel, as a driver's scanner would. The ``karrio`` harness
drives a real Karrio server (``tests.peers.karrio_server``, started once per session) with its offline
``generic`` carrier: a parcel's tracker is created with ``../shared/peers/karrio-make-tracker.py`` on its
first move, and every move injects a carrier event. Without ``../shared`` the Karrio tests are skipped; the
unit tests at the end (webhook bodies captured from that server, the status table, failures over a mocked
transport) always run.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import httpx
import pytest

from services.couriers.ports import (
    Booking,
    BookingRequest,
    Courier,
    CourierRejected,
    CourierUnavailable,
    Parcel,
    Place,
    ShipmentNotFound,
    TrackingStatus,
)
from services.couriers.providers.karrio.gateway import KarrioCourier
from services.couriers.providers.karrio.mapping import draft_body, parse_webhook, tracking_status
from services.couriers.providers.local.gateway import LocalCourier
from services.couriers.providers.local.table import LocalParcel
from services.db import SessionFactory, create_engine, session_factory, transaction
from tests.peers import KarrioPeer, free_port

LYON = Place(
    name="Microfactory Lyon",
    lines=("12 Rue de la Republique",),
    city="Lyon",
    postal_code="69002",
    country="FR",
    latitude=45.7640,
    longitude=4.8357,
    phone="+33400000000",
    company="Spareflow",
)
PARIS = Place(
    name="Jane Customer",
    lines=("5 Avenue Foch", "3e etage"),
    city="Paris",
    postal_code="75016",
    country="FR",
    latitude=48.8718,
    longitude=2.2836,
    phone="+33100000000",
    email="jane@example.com",
)
BOX = Parcel(weight_g=350, length_mm=200, width_mm=150, height_mm=100)


class CourierHarness(Protocol):
    """An adapter under test, what to ship with it, and the means to play the courier's side."""

    @property
    def courier(self) -> Courier: ...

    @property
    def origin(self) -> Place: ...

    @property
    def destination(self) -> Place: ...

    @property
    def parcel(self) -> Parcel: ...

    async def move(self, booking: Booking, status: TrackingStatus) -> None:
        """Make the courier report the booked parcel at ``status`` from now on."""
        ...


@dataclass
class KarrioHarness:
    courier: KarrioCourier
    peer: KarrioPeer
    origin: Place = LYON
    destination: Place = PARIS
    parcel: Parcel = BOX
    moved_at: list[datetime] = field(default_factory=list)
    _trackers: dict[str, str] = field(default_factory=dict)

    async def move(self, booking: Booking, status: TrackingStatus) -> None:
        tracker = self._trackers.get(booking.courier_shipment_id)
        if tracker is None:
            tracker = await asyncio.to_thread(self.peer.make_tracker, booking.courier_shipment_id)
            self._trackers[booking.courier_shipment_id] = tracker
        # Karrio orders events by date and time to the second: each move is a whole second, after the
        # tracker's own label-created event (which has milliseconds) and after the previous move.
        at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        if self.moved_at:
            at = max(at, self.moved_at[-1] + timedelta(seconds=1))
        self.moved_at.append(at)
        # Every one of our statuses is also one of Karrio's tracker statuses, by the same name.
        await asyncio.to_thread(self.peer.scan, tracker, status.value, at, location="Spareflow test depot")


@asynccontextmanager
async def karrio_harness(request: pytest.FixtureRequest) -> AsyncIterator[KarrioHarness]:
    peer: KarrioPeer = request.getfixturevalue("karrio_peer")
    courier = KarrioCourier(peer.base_url, peer.token)
    try:
        await courier.ensure_generic_connection()
        yield KarrioHarness(courier, peer)
    finally:
        await courier.aclose()


@dataclass
class LocalHarness:
    """The built-in courier, in real time (a parcel is picked up half an hour after it is ready). Moving
    a parcel plays its driver: the planned events up to ``status`` happen now."""

    courier: LocalCourier
    sessions: SessionFactory
    origin: Place = LYON
    destination: Place = PARIS
    parcel: Parcel = BOX

    async def move(self, booking: Booking, status: TrackingStatus) -> None:
        async with transaction(self.sessions) as session:
            parcel = await session.get(LocalParcel, booking.tracking_number)
            assert parcel is not None
            steps = [entry["status"] for entry in parcel.plan]
            reached = steps.index(status.value) + 1
            now = datetime.now(UTC)
            parcel.plan = [
                {**entry, "at": (now - timedelta(milliseconds=reached - i)).isoformat()}
                if i < reached
                else entry
                for i, entry in enumerate(parcel.plan)
            ]


@asynccontextmanager
async def local_harness(request: pytest.FixtureRequest) -> AsyncIterator[LocalHarness]:
    engine = create_engine(request.getfixturevalue("sqlite_url"))
    sessions = session_factory(engine)
    courier = LocalCourier(sessions)
    try:
        yield LocalHarness(courier, sessions)
    finally:
        await courier.aclose()
        await engine.dispose()


# Every adapter of the port, by name: a harness factory each.
HARNESSES: dict[str, Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[CourierHarness]]] = {
    "karrio": karrio_harness,
    "local": local_harness,
}


@pytest.fixture(params=list(HARNESSES))
async def harness(request: pytest.FixtureRequest, sqlite_url: str) -> AsyncIterator[CourierHarness]:
    # sqlite_url (the local courier's database) is set up here: an async fixture cannot be first asked
    # for by name from inside another one.
    async with HARNESSES[request.param](request) as built:
        yield built


def booking_request(
    harness: CourierHarness,
    *,
    key: str | None = None,
    service: str | None = None,
    ready_at: datetime | None = None,
    destination: Place | None = None,
) -> BookingRequest:
    return BookingRequest(
        idempotency_key=key or f"test-{uuid.uuid4()}",
        reference=f"order-{uuid.uuid4().hex[:12]}",
        origin=harness.origin,
        destination=destination or harness.destination,
        parcel=harness.parcel,
        service=service,
        ready_at=ready_at,
    )


def is_utc(moment: datetime | None) -> bool:
    return moment is not None and moment.utcoffset() == timedelta(0)


# --- The contract ---------------------------------------------------------------------------------------


async def test_capabilities_name_the_courier_and_its_services(harness: CourierHarness) -> None:
    capabilities = await harness.courier.capabilities()

    assert capabilities.name == harness.courier.name
    assert capabilities.services
    assert all(isinstance(service, str) and service for service in capabilities.services)


async def test_a_quote_offers_listed_services_at_a_non_negative_cost(harness: CourierHarness) -> None:
    listed = (await harness.courier.capabilities()).services

    options = await harness.courier.quote(harness.origin, harness.destination, harness.parcel)

    assert options
    for option in options:
        assert option.service in listed
        assert option.cost >= 0
        assert len(option.currency) == 3
        assert option.currency.isupper()
        assert option.transit_hours is None or option.transit_hours > 0


async def test_a_booking_has_a_tracking_number_a_pdf_label_and_a_quoted_service(
    harness: CourierHarness,
) -> None:
    quoted = {
        o.service for o in await harness.courier.quote(harness.origin, harness.destination, harness.parcel)
    }
    ready_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)

    booking = await harness.courier.book(booking_request(harness, ready_at=ready_at))

    assert booking.tracking_number
    assert booking.courier_shipment_id
    assert booking.label_pdf.startswith(b"%PDF")
    assert booking.service in quoted
    if booking.pickup_from is not None:
        assert is_utc(booking.pickup_from)
        assert booking.pickup_from >= ready_at
    if booking.pickup_until is not None:
        assert booking.pickup_from is not None
        assert booking.pickup_until > booking.pickup_from


async def test_a_named_service_is_the_one_booked(harness: CourierHarness) -> None:
    options = await harness.courier.quote(harness.origin, harness.destination, harness.parcel)
    wanted = options[-1].service

    booking = await harness.courier.book(booking_request(harness, service=wanted))

    assert booking.service == wanted


async def test_booking_again_with_the_same_key_returns_the_first_booking(harness: CourierHarness) -> None:
    request = booking_request(harness)
    first = await harness.courier.book(request)

    again = await harness.courier.book(request)

    assert (again.courier_shipment_id, again.tracking_number) == (
        first.courier_shipment_id,
        first.tracking_number,
    )
    assert again.service == first.service
    assert again.label_pdf.startswith(b"%PDF")


async def test_another_key_books_another_shipment(harness: CourierHarness) -> None:
    first = await harness.courier.book(booking_request(harness))

    other = await harness.courier.book(booking_request(harness))

    assert other.courier_shipment_id != first.courier_shipment_id
    assert other.tracking_number != first.tracking_number


async def test_a_parcel_just_booked_is_pending(harness: CourierHarness) -> None:
    booking = await harness.courier.book(booking_request(harness))

    tracking = await harness.courier.track(booking.tracking_number)

    assert tracking.tracking_number == booking.tracking_number
    assert tracking.status is TrackingStatus.PENDING


JOURNEY = [TrackingStatus.IN_TRANSIT, TrackingStatus.OUT_FOR_DELIVERY, TrackingStatus.DELIVERED]


@pytest.mark.parametrize("stops", [1, 2, 3], ids=[s.value for s in JOURNEY])
async def test_tracking_follows_the_parcel(harness: CourierHarness, stops: int) -> None:
    booking = await harness.courier.book(booking_request(harness))

    for step, status in enumerate(JOURNEY[:stops], start=1):
        await harness.move(booking, status)

        tracking = await harness.courier.track(booking.tracking_number)

        assert tracking.status is status
        assert len(tracking.events) >= step
        times = [event.occurred_at for event in tracking.events]
        assert times == sorted(times), "events oldest first"
        assert all(is_utc(moment) for moment in times)
        # A courier may file the first in-transit scan as the pickup (Karrio does).
        reported = {status, TrackingStatus.PICKED_UP} if status is TrackingStatus.IN_TRANSIT else {status}
        assert tracking.events[-1].status in reported


async def test_an_unknown_tracking_number_is_not_found(harness: CourierHarness) -> None:
    unknown = f"NOPE{uuid.uuid4().hex[:10]}"

    with pytest.raises(ShipmentNotFound):
        await harness.courier.track(unknown)
    with pytest.raises(ShipmentNotFound):
        await harness.courier.cancel(unknown)


async def test_cancelling_before_pickup_is_idempotent_and_tracked(harness: CourierHarness) -> None:
    booking = await harness.courier.book(booking_request(harness))

    await harness.courier.cancel(booking.tracking_number)
    await harness.courier.cancel(booking.tracking_number)

    assert (await harness.courier.track(booking.tracking_number)).status is TrackingStatus.CANCELLED


async def test_cancelling_after_pickup_is_refused_unless_the_courier_allows_it(
    harness: CourierHarness,
) -> None:
    if (await harness.courier.capabilities()).cancel_after_pickup:
        pytest.skip("this courier takes parcels back after pickup")
    booking = await harness.courier.book(booking_request(harness))
    await harness.move(booking, TrackingStatus.IN_TRANSIT)

    with pytest.raises(CourierRejected) as refused:
        await harness.courier.cancel(booking.tracking_number)

    assert not refused.value.retryable
    assert (await harness.courier.track(booking.tracking_number)).status is TrackingStatus.IN_TRANSIT


async def test_a_destination_in_no_country_is_rejected(harness: CourierHarness) -> None:
    nowhere = Place(
        name="Nobody", lines=("1 Nowhere Street",), city="Atlantis", postal_code="00000", country="ZZ",
        latitude=0.0, longitude=-30.0,
    )  # fmt: skip

    with pytest.raises(CourierRejected) as quoted:
        await harness.courier.quote(harness.origin, nowhere, harness.parcel)
    with pytest.raises(CourierRejected) as booked:
        await harness.courier.book(booking_request(harness, destination=nowhere))

    assert not quoted.value.retryable
    assert not booked.value.retryable


# --- Karrio, on the real server ---------------------------------------------------------------------------


@pytest.fixture
async def karrio(request: pytest.FixtureRequest) -> AsyncIterator[KarrioHarness]:
    async with karrio_harness(request) as built:
        yield built


@pytest.fixture
async def karrio_api(karrio_peer: KarrioPeer) -> AsyncIterator[httpx.AsyncClient]:
    """Karrio's API as is, to set the scene behind the adapter's back."""
    headers = {"Authorization": f"Token {karrio_peer.token}"}
    async with httpx.AsyncClient(base_url=karrio_peer.base_url, headers=headers, timeout=60) as api:
        yield api


async def test_karrio_event_times_are_what_the_carrier_said_in_utc(karrio: KarrioHarness) -> None:
    booking = await karrio.courier.book(booking_request(karrio))
    await karrio.move(booking, TrackingStatus.OUT_FOR_DELIVERY)

    tracking = await karrio.courier.track(booking.tracking_number)

    assert tracking.events[-1].occurred_at == karrio.moved_at[-1]
    assert tracking.events[-1].courier_code == "OUT_FOR_DELIVERY"
    assert tracking.events[-1].location == "Spareflow test depot"
    # Karrio's own first event: the label was bought (status "created").
    assert tracking.events[0].status is TrackingStatus.PENDING


async def test_karrio_buys_the_draft_an_interrupted_booking_left(
    karrio: KarrioHarness, karrio_api: httpx.AsyncClient
) -> None:
    # A worker killed between creating the draft and buying it leaves this behind (twice, if two tried).
    request = booking_request(karrio)
    drafts = []
    for _ in range(2):
        created = await karrio_api.post("/v1/shipments", json=draft_body(request))
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "draft"
        drafts.append(created.json()["id"])

    booking = await karrio.courier.book(request)

    assert booking.courier_shipment_id == drafts[0]
    assert booking.label_pdf.startswith(b"%PDF")
    later = await karrio_api.get(f"/v1/shipments/{drafts[1]}")
    assert later.json()["status"] == "draft"


async def test_karrio_refuses_to_book_again_a_key_whose_booking_was_cancelled(karrio: KarrioHarness) -> None:
    request = booking_request(karrio)
    booking = await karrio.courier.book(request)
    await karrio.courier.cancel(booking.tracking_number)

    with pytest.raises(CourierRejected) as refused:
        await karrio.courier.book(request)

    assert refused.value.code == "booking_cancelled"


async def test_karrio_with_a_wrong_token_is_unauthorized(karrio_peer: KarrioPeer) -> None:
    courier = KarrioCourier(karrio_peer.base_url, "not-a-token")
    try:
        with pytest.raises(CourierRejected) as refused:
            await courier.capabilities()
    finally:
        await courier.aclose()

    assert refused.value.code == "courier_unauthorized"
    assert not refused.value.retryable


async def test_karrio_generic_connection_is_created_once(karrio: KarrioHarness) -> None:
    first = await karrio.courier.ensure_generic_connection()

    assert await karrio.courier.ensure_generic_connection() == first


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[Delivery]]]:
    """A loopback HTTP endpoint that keeps what is POSTed to it; yields its URL and the deliveries."""
    received: list[Delivery] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append(Delivery(dict(self.headers), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/webhooks/karrio", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_karrio_webhooks_from_the_real_server_parse(
    karrio: KarrioHarness, karrio_api: httpx.AsyncClient
) -> None:
    with webhook_receiver() as (url, received):
        webhook_id, secret = await karrio.courier.subscribe_webhook(url)
        try:
            assert await karrio.courier.subscribe_webhook(url) == (webhook_id, secret)
            booking = await karrio.courier.book(booking_request(karrio))
            for status in JOURNEY:
                await karrio.move(booking, status)
        finally:
            await karrio_api.delete(f"/v1/webhooks/{webhook_id}")

    assert {d.headers["X-Event-Id"] for d in received} == {secret}
    events = [parse_webhook(json.loads(d.body)) for d in received]
    ours = [e for e in events if e.tracking_number == booking.tracking_number]
    kinds = [e.event_type for e in ours]
    assert kinds[0] == "shipment_purchased"
    assert "tracker_created" in kinds
    assert ours[0].courier_shipment_id == booking.courier_shipment_id
    assert ours[0].tracking is not None
    assert ours[0].tracking.status is TrackingStatus.PENDING
    updates = [e.tracking for e in ours if e.event_type == "tracker_updated"]
    assert [t.status for t in updates if t is not None] == JOURNEY
    assert len({e.event_id for e in events}) == len(events)


# --- Karrio, unit: no server ------------------------------------------------------------------------------


async def test_karrio_at_a_closed_port_is_unavailable() -> None:
    courier = KarrioCourier(f"http://127.0.0.1:{free_port()}", "token", timeout_s=2)
    request = BookingRequest("key", "order", LYON, PARIS, BOX)
    calls: list[Callable[[], Awaitable[object]]] = [
        courier.capabilities,
        lambda: courier.quote(LYON, PARIS, BOX),
        lambda: courier.book(request),
        lambda: courier.track("123"),
        lambda: courier.cancel("123"),
    ]
    try:
        for call in calls:
            with pytest.raises(CourierUnavailable) as failed:
                await call()
            assert failed.value.retryable
    finally:
        await courier.aclose()


def mocked(handler: Callable[[httpx.Request], httpx.Response]) -> KarrioCourier:
    return KarrioCourier("http://karrio.invalid", "token", transport=httpx.MockTransport(handler))


CONNECTIONS = {"next": None, "results": [{"id": "car_1", "carrier_name": "generic", "carrier_id": "sf"}]}


def shipments(*found: dict[str, Any]) -> dict[str, Any]:
    return {"next": None, "results": list(found)}


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(503, text="<html>Bad Gateway</html>"),
        httpx.Response(500, json={"errors": [{"code": "server_error", "message": "boom"}]}),
        httpx.Response(429, json={"detail": "Request was throttled."}),
        httpx.Response(200, text="<html>not json</html>"),
        httpx.Response(200, json={"rates": [{"id": "rat_1"}]}),  # no currency
        httpx.Response(200, json=["not", "an", "object"]),
    ],
    ids=["502-page", "500", "429", "html", "rate-without-currency", "list"],
)
async def test_karrio_answers_we_cannot_use_are_retryable(answer: httpx.Response) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=CONNECTIONS) if request.url.path == "/v1/connections" else answer

    courier = mocked(handler)
    with pytest.raises(CourierUnavailable) as failed:
        await courier.quote(LYON, PARIS, BOX)
    await courier.aclose()

    assert failed.value.retryable


async def test_karrio_timeouts_are_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    courier = mocked(handler)
    with pytest.raises(CourierUnavailable):
        await courier.track("123")
    await courier.aclose()


async def test_karrio_refusals_carry_karrios_messages() -> None:
    errors = [
        {
            "code": "validation",
            "level": "error",
            "message": 'recipient.country_code: "ZZ" is not a valid choice.',
        },
        {"code": "validation", "level": "error", "message": "parcels.0.weight: This field is required."},
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/connections":
            return httpx.Response(200, json=CONNECTIONS)
        return httpx.Response(400, json={"errors": errors})

    courier = mocked(handler)
    with pytest.raises(CourierRejected) as refused:
        await courier.quote(LYON, PARIS, BOX)
    await courier.aclose()

    assert refused.value.code == "courier_invalid_request"
    assert not refused.value.retryable
    assert '"ZZ" is not a valid choice' in str(refused.value)
    assert "parcels.0.weight" in str(refused.value)


async def test_karrio_a_parcel_under_way_cannot_be_cancelled() -> None:
    shipment = {"id": "shp_1", "status": "in_transit", "tracking_number": "123", "tracker_id": "trk_1"}
    conflict = {
        "errors": [{"code": "state_error", "message": "The shipment is 'in_transit' and can not be..."}]
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/shipments":
            return httpx.Response(200, json=shipments(shipment))
        return httpx.Response(409, json=conflict)

    courier = mocked(handler)
    with pytest.raises(CourierRejected) as refused:
        await courier.cancel("123")
    await courier.aclose()

    assert refused.value.code == "courier_conflict"


async def test_karrio_matches_tracking_numbers_exactly() -> None:
    # Karrio's tracking_number filter is a substring match.
    longer = {"id": "shp_1", "status": "created", "tracking_number": "1234", "tracker_id": None}
    courier = mocked(lambda request: httpx.Response(200, json=shipments(longer)))

    with pytest.raises(ShipmentNotFound):
        await courier.track("123")
    with pytest.raises(ShipmentNotFound):
        await courier.track("")
    await courier.aclose()


async def test_karrio_an_unreadable_event_time_is_retryable() -> None:
    shipment = {"id": "shp_1", "status": "in_transit", "tracking_number": "123", "tracker_id": "trk_1"}
    tracker = {
        "id": "trk_1",
        "tracking_number": "123",
        "status": "in_transit",
        "events": [{"date": "yesterday", "time": "teatime", "status": "in_transit"}],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json=shipments(shipment) if request.url.path == "/v1/shipments" else tracker
        )

    courier = mocked(handler)
    with pytest.raises(CourierUnavailable):
        await courier.track("123")
    await courier.aclose()


KARRIO_TRACKER_STATUSES = {
    "pending": TrackingStatus.PENDING,
    "picked_up": TrackingStatus.PICKED_UP,
    "unknown": TrackingStatus.UNKNOWN,
    "on_hold": TrackingStatus.ON_HOLD,
    "cancelled": TrackingStatus.CANCELLED,
    "delivered": TrackingStatus.DELIVERED,
    "in_transit": TrackingStatus.IN_TRANSIT,
    "delivery_delayed": TrackingStatus.IN_TRANSIT,  # late, still moving
    "out_for_delivery": TrackingStatus.OUT_FOR_DELIVERY,
    "ready_for_pickup": TrackingStatus.OUT_FOR_DELIVERY,  # the last leg: at a pickup point
    "delivery_failed": TrackingStatus.DELIVERY_FAILED,
    "return_to_sender": TrackingStatus.RETURN_TO_SENDER,
}


@pytest.mark.parametrize(("karrio_status", "ours"), KARRIO_TRACKER_STATUSES.items())
def test_karrio_tracker_statuses_map_to_ours(karrio_status: str, ours: TrackingStatus) -> None:
    assert tracking_status(karrio_status) is ours


@pytest.mark.parametrize("odd", ["lost_in_space", "", "IN_TRANSIT", None])
def test_karrio_statuses_we_do_not_know_are_unknown(odd: str | None) -> None:
    assert tracking_status(odd) is TrackingStatus.UNKNOWN


def test_karrio_label_created_event_is_pending() -> None:
    assert tracking_status("created") is TrackingStatus.PENDING


# Captured from karrio-server 2026.1, trimmed: addresses, parcels, rates, tracker info, null fields.
TRACKER_UPDATED: dict[str, Any] = {
    "event": "tracker_updated",
    "data": {
        "id": "trk_da2653139acb4d16b96c1a9a46a48565",
        "object_type": "tracker",
        "status": "delivered",
        "tracking_number": "3c66ffc64452",
        "carrier_name": "generic",
        "carrier_id": "spareflow-generic",
        "metadata": {},
        "events": [
            {
                "date": "2026-11-21",
                "time": "06:40 PM",
                "timestamp": None,
                "status": "delivered",
                "code": "DLV",
                "description": "Delivered",
                "location": "Paris",
            },
            {
                "date": "2026-11-21",
                "time": "18:05",
                "timestamp": None,
                "status": "picked_up",
                "code": "IT",
                "description": "In transit to hub",
                "location": "Lyon",
            },
            {
                "date": "2026-11-21",
                "time": "05:34 PM",
                "timestamp": "2026-11-21T17:34:15.177Z",
                "status": "created",
                "code": "CREATED",
                "description": "Shipment label created",
            },
        ],
        "delivered": True,
        "estimated_delivery": None,
    },
}
SHIPMENT_PURCHASED: dict[str, Any] = {
    "event": "shipment_purchased",
    "data": {
        "id": "shp_3c52dbbbdff74d60a9b0cf1a922db6f5",
        "object_type": "shipment",
        "status": "created",
        "tracking_number": "3c66ffc64452",
        "tracker_id": None,
        "carrier_name": "generic",
        "carrier_id": "spareflow-generic",
        "service": "standard_service",
        "reference": "order-cap1",
        "metadata": {"spareflow_idempotency_key": "340b617d-7d00-4c23-85d5-ca2a9937928d"},
        "created_at": "2026-11-21 17:34:15.177296+00:00",
    },
}
SHIPMENT_CANCELLED: dict[str, Any] = {
    "event": "shipment_cancelled",
    "data": {**SHIPMENT_PURCHASED["data"], "status": "cancelled"},
}


def test_karrio_tracker_webhook_gives_the_tracking_oldest_event_first() -> None:
    event = parse_webhook(TRACKER_UPDATED)

    assert event.event_type == "tracker_updated"
    assert event.tracking_number == "3c66ffc64452"
    assert event.tracking is not None
    assert event.tracking.status is TrackingStatus.DELIVERED
    assert [(e.status, e.occurred_at, e.courier_code) for e in event.tracking.events] == [
        (TrackingStatus.PENDING, datetime(2026, 11, 21, 17, 34, 15, 177000, tzinfo=UTC), "CREATED"),
        (TrackingStatus.PICKED_UP, datetime(2026, 11, 21, 18, 5, tzinfo=UTC), "IT"),
        (TrackingStatus.DELIVERED, datetime(2026, 11, 21, 18, 40, tzinfo=UTC), "DLV"),
    ]
    assert event.tracking.events[-1].location == "Paris"


@pytest.mark.parametrize(
    ("payload", "status"),
    [(SHIPMENT_PURCHASED, TrackingStatus.PENDING), (SHIPMENT_CANCELLED, TrackingStatus.CANCELLED)],
    ids=["purchased", "cancelled"],
)
def test_karrio_shipment_webhook_gives_its_status_alone(
    payload: dict[str, Any], status: TrackingStatus
) -> None:
    event = parse_webhook(payload)

    assert event.courier_shipment_id == "shp_3c52dbbbdff74d60a9b0cf1a922db6f5"
    assert event.tracking_number == "3c66ffc64452"
    assert event.tracking is not None
    assert (event.tracking.status, event.tracking.events) == (status, ())


def test_karrio_webhook_event_id_is_stable_and_distinct() -> None:
    reordered = {"data": dict(reversed(list(TRACKER_UPDATED["data"].items()))), "event": "tracker_updated"}

    first = parse_webhook(TRACKER_UPDATED).event_id

    assert first.startswith("karrio:")
    assert parse_webhook(reordered).event_id == first
    assert parse_webhook(SHIPMENT_PURCHASED).event_id != first
    assert parse_webhook(SHIPMENT_CANCELLED).event_id != parse_webhook(SHIPMENT_PURCHASED).event_id


def test_karrio_webhook_of_another_kind_has_no_tracking() -> None:
    event = parse_webhook({"event": "order_created", "data": {"id": "ord_1", "object_type": "order"}})

    assert (event.event_type, event.tracking_number, event.tracking) == ("order_created", None, None)


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"type": "tracking.updated", "data": {}},
        {"event": "tracker_updated"},
        {"event": "tracker_updated", "data": "trk_1"},
        {"event": "tracker_updated", "data": {"id": "trk_1"}},
        {"event": "tracker_updated", "data": {**TRACKER_UPDATED["data"], "events": [{"date": "someday"}]}},
        {"event": "shipment_cancelled", "data": {"tracking_number": "123"}},
    ],
    ids=[
        "empty",
        "not-karrio",
        "no-data",
        "data-not-object",
        "tracker-incomplete",
        "bad-date",
        "shipment-no-id",
    ],
)
def test_karrio_webhook_bodies_we_cannot_read_are_refused(payload: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Karrio"):
        parse_webhook(payload)
