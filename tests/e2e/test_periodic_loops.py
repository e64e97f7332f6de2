"""Periodic loops over many rows (the SLA watchdog, the factory sweep, the re-optimiser): one item whose step
raises every time is logged and counted, and the others are still handled, on every run (issue 14)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from services.config import Settings
from services.fulfilment.leases import FactoryJobs
from services.fulfilment.repository import FactoryJobRepository
from services.orders import reoptimize as reoptimizer
from services.orders.service import OrderService
from services.orders.watchdog import WatchOutcome
from services.routing.optimizer import Move
from services.workers.jobs import orders as order_jobs
from tests.builders import BREMEN, HAMBURG, make_shop, order_body, place_order
from tests.e2e.test_shipping import enqueue
from tests.workers import run_worker_until_idle


def failures(job: str) -> float:
    return REGISTRY.get_sample_value("spareflow_job_item_failures_total", {"job": job}) or 0.0


async def _orders(client: httpx.AsyncClient, settings: Settings, count: int) -> list[uuid.UUID]:
    shop = await make_shop(client, settings, {"hamburg": HAMBURG, "bremen": BREMEN})
    placed = []
    for _ in range(count):
        response = await place_order(client, shop["tech"], order_body("BR-1", HAMBURG))
        assert response.status_code == 201, response.text
        placed.append(uuid.UUID(response.json()["id"]))
    return placed


async def test_the_watchdog_checks_every_order_when_one_fails(
    client: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    placed = await _orders(client, settings, 3)
    await run_worker_until_idle(settings)
    watched: list[uuid.UUID] = []

    async def watch(orders: OrderService, order_id: uuid.UUID, **kwargs: Any) -> WatchOutcome:
        watched.append(order_id)
        if order_id == watched[0]:
            raise RuntimeError("unreadable order")
        return WatchOutcome(flagged=False, rerouted=False)

    monkeypatch.setattr(order_jobs, "watch", watch)
    before = failures("watch_orders")
    for _ in range(2):
        await enqueue(settings, "watch_orders")
        await run_worker_until_idle(settings)  # no job failed

    assert sorted(watched) == sorted(placed * 2)
    assert failures("watch_orders") == before + 2


async def test_the_factory_sweep_handles_every_silent_site_when_one_fails(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    sites = [uuid.uuid4() for _ in range(3)]
    silenced: list[uuid.UUID] = []

    async def silent_sites(self: FactoryJobRepository, **kwargs: Any) -> Sequence[uuid.UUID]:
        return sites

    async def silence(self: FactoryJobs, site_id: uuid.UUID, **kwargs: Any) -> bool:
        silenced.append(site_id)
        if site_id == sites[0]:
            raise RuntimeError("cannot take it offline")
        return True

    monkeypatch.setattr(FactoryJobRepository, "silent_sites", silent_sites)
    monkeypatch.setattr(FactoryJobs, "silence", silence)
    before = failures("watch_factories")
    await enqueue(settings, "watch_factories")
    await run_worker_until_idle(settings)

    assert silenced == sites
    assert failures("watch_factories") == before + 1


async def test_the_reoptimiser_applies_the_other_groups_when_one_fails(
    client: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    placed = await _orders(client, settings, 3)
    await run_worker_until_idle(settings)

    def proposed(plan: Any, problem: Any, **kwargs: Any) -> list[Move]:
        # Each order a group of its own: the first group fails, the others are applied.
        printer = problem.printers[0].printer_id
        return [Move(str(order_id), None, printer, 10.0, group) for group, order_id in enumerate(placed)]

    tried: list[uuid.UUID] = []

    async def move_to_site(orders: OrderService, order_id: uuid.UUID, site_id: str, **kwargs: Any) -> Any:
        tried.append(order_id)
        if order_id == placed[0]:
            raise RuntimeError("cannot move it")
        return await orders.get(order_id, visible_to=None)

    monkeypatch.setattr(reoptimizer, "moves", proposed)
    monkeypatch.setattr(reoptimizer, "move_to_site", move_to_site)
    before = failures("reoptimize_orders")
    await enqueue(settings, "reoptimize_orders")
    await run_worker_until_idle(settings)

    assert tried == placed
    assert failures("reoptimize_orders") == before + 1
