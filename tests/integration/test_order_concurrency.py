"""Hundreds of simultaneous orders against two printers: no slot is ever booked twice.

Two app instances stand for two API processes (each has its own routing snapshot); they share the
database, which is what keeps reservations disjoint (site row locks on PostgreSQL, the single write lock on
SQLite).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest
import sqlalchemy as sa

from services.config import Settings
from services.db import create_engine
from tests.builders import (
    BREMEN,
    HAMBURG,
    app_client,
    make_shop,
    order_body,
    place_order,
)

ORDERS = 240


@pytest.fixture
async def second_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(settings) as http:
        yield http


async def test_concurrent_orders_never_overlap_on_a_printer(
    client: httpx.AsyncClient, second_client: httpx.AsyncClient, settings: Settings
) -> None:
    shop = await make_shop(client, settings, {"hamburg": HAMBURG, "bremen": BREMEN}, part_number="RUSH-1")
    tech = shop["tech"]

    clients = itertools.cycle([client, second_client])
    # Two printers have room for a few dozen of them within 48 h: the rest must be refused, not squeezed in.
    responses = await asyncio.gather(
        *(
            place_order(next(clients), tech, order_body("RUSH-1", HAMBURG, quantity=1 + i % 2))
            for i in range(ORDERS)
        )
    )
    statuses: dict[int, int] = defaultdict(int)
    for response in responses:
        statuses[response.status_code] += 1
        if response.status_code != 201:
            assert response.json()["error"]["code"] == "sla_unachievable", response.text
    accepted = [r.json() for r in responses if r.status_code == 201]
    print(f"\n{ORDERS} concurrent orders: {dict(statuses)}")
    assert set(statuses) <= {201, 422}
    assert len(accepted) >= 20, "too few accepted to test anything"
    assert statuses[422] >= 1, "the test must saturate capacity to mean anything"

    engine = create_engine(settings.resolved_database_url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.text(
                        "SELECT order_id, printer_id, start_at, end_at FROM printer_reservation "
                        "WHERE released_at IS NULL ORDER BY printer_id, start_at"
                    )
                )
            ).all()
    finally:
        await engine.dispose()

    def ts(value: object) -> datetime:
        return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))

    overlaps = 0
    for _, group in itertools.groupby(rows, key=lambda row: str(row.printer_id)):
        ordered = sorted(group, key=lambda row: ts(row.start_at))
        overlaps += sum(ts(b.start_at) < ts(a.end_at) for a, b in itertools.pairwise(ordered))
    assert overlaps == 0
    # Every accepted promise is backed by exactly its reservation, and kept the SLA it was asked for.
    by_order = {uuid.UUID(str(row.order_id)): row for row in rows}
    assert len(by_order) == len(rows) == len(accepted)
    for order in accepted:
        quote = order["routing"]["quote"]
        row = by_order[uuid.UUID(order["id"])]
        assert ts(row.start_at).timestamp() == pytest.approx(
            datetime.fromisoformat(quote["print_start"]).timestamp()
        )
        assert ts(row.end_at).timestamp() == pytest.approx(
            datetime.fromisoformat(quote["print_end"]).timestamp()
        )
        assert quote["on_time"]
        assert datetime.fromisoformat(quote["delivery_at"]) <= datetime.fromisoformat(order["need_by"])
