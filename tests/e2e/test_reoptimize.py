"""The batch re-optimiser through its CLI (dry run) and the worker's job (applied)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from arq import create_pool
from arq.connections import RedisSettings

from services.config import Settings
from tests.builders import (
    BREMEN,
    HAMBURG,
    bearer,
    make_factory,
    make_shop,
    order_body,
    place_order,
)
from tests.workers import run_worker_until_idle

SPAREFLOW = str(Path(sys.executable).parent / "spareflow")


def _cli(settings: Settings, *args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPAREFLOW_")}
    env["SPAREFLOW_DATABASE_URL"] = settings.resolved_database_url
    env["SPAREFLOW_DATA_DIR"] = str(settings.data_dir)
    result = subprocess.run(
        [SPAREFLOW, "orders", "reoptimize", "--json", *args], env=env, capture_output=True, text=True,
        timeout=120, check=True,
    )  # fmt: skip
    return dict(json.loads(result.stdout))


async def test_orders_move_to_a_site_that_opened_after_they_were_routed(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    shop = await make_shop(client, settings, {"hamburg": HAMBURG})
    admin, tech = shop["admin"], shop["tech"]
    # Three orders for Bremen while only Hamburg exists, one for Hamburg itself.
    placed = [(await place_order(client, tech, order_body("BR-1", BREMEN))).json() for _ in range(3)]
    local = (await place_order(client, tech, order_body("BR-1", HAMBURG))).json()
    assert {o["routing"]["quote"]["site_slug"] for o in [*placed, local]} == {"hamburg"}
    await make_factory(client, admin, "bremen", BREMEN)

    dry = _cli(settings, "--min-gain", "1")
    assert dry["orders"] == 4
    assert dry["applied"] == 0
    assert {m["job_id"] for m in dry["moves"]} == {o["id"] for o in placed}  # Hamburg's own order stays
    for order in placed:  # a dry run changes nothing
        assert (await client.get(f"/orders/{order['id']}", headers=bearer(tech))).json()["reroutes"] == 0

    eager = settings.model_copy(update={"reoptimize_min_gain": 1.0})
    pool = await create_pool(
        RedisSettings.from_dsn(str(settings.redis_url)), default_queue_name=settings.queue_name
    )
    try:
        await pool.enqueue_job("reoptimize_orders")
    finally:
        await pool.aclose()
    await run_worker_until_idle(eager)
    for order in placed:
        moved = (await client.get(f"/orders/{order['id']}", headers=bearer(tech))).json()
        assert moved["routing"]["quote"]["site_slug"] == "bremen"
        events = (await client.get(f"/orders/{order['id']}/events", headers=bearer(tech))).json()
        assert any(e["reason"] == "reoptimized" for e in events)
    stayed = (await client.get(f"/orders/{local['id']}", headers=bearer(tech))).json()
    assert stayed["reroutes"] == 0
    again = _cli(settings, "--min-gain", "1")  # nothing left worth moving
    assert again["moves"] == []
