"""The built-in courier resends a tracking webhook our API did not acknowledge, but not for ever: a refusal
that resending cannot change parks the parcel at once, and other failures back off and park it after
``max_attempts`` (issue 14)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import httpx
import pytest

from parts_catalog.sqltypes import utcnow
from services.couriers.ports import BookingRequest
from services.couriers.providers.local.gateway import LocalCourier
from services.couriers.providers.local.table import LocalParcel
from services.db import SessionFactory, create_engine, session_factory, transaction
from tests.contract.test_couriers import BOX, LYON, PARIS

Answer = Callable[[httpx.Request], httpx.Response]
HOUR = timedelta(hours=1)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(database_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


def courier(sessions: SessionFactory, answer: Answer, *, max_attempts: int = 3) -> LocalCourier:
    return LocalCourier(
        sessions,
        time_scale=1e6,  # the whole plan is due a moment after booking
        webhook_url="http://api.test/webhooks/partners/local",
        webhook_secret="whsec_" + "A" * 32,
        max_attempts=max_attempts,
        http=httpx.AsyncClient(transport=httpx.MockTransport(answer)),
    )


async def book(local: LocalCourier, key: str) -> str:
    request = BookingRequest(idempotency_key=key, reference=key, origin=LYON, destination=PARIS, parcel=BOX)
    return (await local.book(request)).tracking_number


async def parcel(sessions: SessionFactory, number: str) -> LocalParcel:
    async with transaction(sessions) as session:
        found = await session.get(LocalParcel, number)
    assert found is not None
    return found


@pytest.mark.parametrize("status", [401, 413, 422])
async def test_a_refusal_that_resending_cannot_change_parks_the_parcel(
    sessions: SessionFactory, status: int
) -> None:
    sent: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["webhook-id"])
        return httpx.Response(status, text="no")

    local = courier(sessions, refuse)
    number = await book(local, "refused")
    now = utcnow() + HOUR
    for tick in range(5):
        assert await local.drive(now=now + tick * HOUR) == 0

    assert sent == [f"{number}-0-picked_up"]
    parked = await parcel(sessions, number)
    assert (parked.reported, parked.attempts, parked.next_due_at) == (0, 1, None)
    assert parked.parked_at is not None
    assert parked.last_error == f"{status} no"


@pytest.mark.parametrize("status", [408, 409, 429, 500, 503])
async def test_a_failure_that_may_pass_backs_off_and_parks_after_max_attempts(
    sessions: SessionFactory, status: int
) -> None:
    sent: list[str] = []

    def fail(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["webhook-id"])
        return httpx.Response(status, text="later")

    local = courier(sessions, fail, max_attempts=3)
    number = await book(local, "failing")
    now = utcnow() + HOUR
    assert await local.drive(now=now) == 0
    # Backing off: the next tick does not resend.
    assert await local.drive(now=now + timedelta(seconds=1)) == 0
    assert len(sent) == 1
    for tick in range(1, 6):
        await local.drive(now=now + tick * 10 * HOUR)

    assert len(sent) == 3
    parked = await parcel(sessions, number)
    assert (parked.attempts, parked.next_due_at, parked.last_error) == (3, None, f"{status} later")
    assert parked.parked_at is not None


async def test_an_event_acknowledged_after_failures_counts_the_next_one_afresh(
    sessions: SessionFactory,
) -> None:
    answers = iter([503, 503, 200, 503, 503, 200, 200, 200])

    def flaky(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers))

    local = courier(sessions, flaky, max_attempts=3)
    number = await book(local, "flaky")
    now = utcnow() + HOUR
    for tick in range(8):
        await local.drive(now=now + tick * 10 * HOUR)

    delivered = await parcel(sessions, number)
    assert (delivered.reported, delivered.attempts, delivered.parked_at) == (4, 0, None)


async def test_parked_parcels_resume_when_an_operator_asks(sessions: SessionFactory) -> None:
    answer = 401

    def receiver(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answer)

    local = courier(sessions, receiver)
    number = await book(local, "resumed")
    now = utcnow() + HOUR
    await local.drive(now=now)
    assert (await parcel(sessions, number)).parked_at is not None

    answer = 200  # the partner's secret is current again
    assert await local.resume(now=now) == [number]
    assert await local.drive(now=now) == 4
    resumed = await parcel(sessions, number)
    assert (resumed.reported, resumed.attempts, resumed.parked_at, resumed.last_error) == (4, 0, None, None)
