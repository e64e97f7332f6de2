"""The printing stage: a simulated factory agent for every printer of every demo site claims, prints and
completes the placed orders' jobs."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.demo.scenario import DEMO_SITES
from services.demo.support import DemoFailed, Say, ok, until
from services.factory_agent.agent import FactoryAgent
from services.factory_agent.client import FactoryApiClient
from services.factory_agent.events import EventLog
from services.factory_agent.simulated import SimulatedPrintHost

# Simulated prints: a demo part's hour of printing passes in a few seconds.
_SIM_SPEED = 2000.0
_SIM_MAX_S = 4.0
PRINTED = frozenset({"printed", "shipped", "delivered"})


@dataclass(slots=True)
class _Fleet:
    """The running agents, what to close after them and the factory keys to revoke."""

    base_url: str
    state_root: Path
    stack: contextlib.AsyncExitStack
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    def start(self, site_slug: str, token: str, printer: dict[str, Any]) -> None:
        """Start an agent for the printer; its JSON log goes to ``agent.log`` in its state directory."""
        state = self.state_root / site_slug / printer["key"]
        state.mkdir(parents=True, exist_ok=True)
        log = self.stack.enter_context((state / "agent.log").open("a", encoding="utf-8"))
        client = FactoryApiClient(self.base_url, token)
        host = SimulatedPrintHost(state / "printer", speed=_SIM_SPEED, max_seconds=_SIM_MAX_S)
        self.closers += [client.aclose, host.aclose]
        agent = FactoryAgent(
            client,
            host,
            printer_id=uuid.UUID(printer["id"]),
            materials=None,
            state_dir=state,
            log=EventLog(log),
            claim_wait_s=1.0,
            poll_s=0.25,
        )
        self.tasks.append(asyncio.create_task(agent.run(self.stop)))

    async def shut_down(self, admin: httpx.AsyncClient) -> list[BaseException | None]:
        """Stop the agents, close their clients and hosts, revoke their keys; each agent's outcome."""
        self.stop.set()
        results = await asyncio.gather(*self.tasks, return_exceptions=True)
        for close in self.closers:
            await close()
        for key_id in self.keys:
            await admin.delete(f"/keys/{key_id}")
        return results


@asynccontextmanager
async def _factory_agents(admin: httpx.AsyncClient, base_url: str, state_root: Path) -> AsyncIterator[int]:
    """A simulated factory agent for every printer of every demo site, each with its site's own factory
    key (revoked afterwards). Their JSON logs go to ``agent.log`` in each agent's state directory."""
    sites = {s["slug"]: s for s in ok(await admin.get("/sites"), 200)}
    async with contextlib.AsyncExitStack() as stack:
        fleet = _Fleet(base_url, state_root, stack)
        for demo_site in DEMO_SITES:
            site = sites[demo_site.slug]
            issued = ok(
                await admin.post(
                    "/keys", json={"role": "factory", "site_id": site["id"], "name": "demo agent"}
                ),
                201,
            )
            fleet.keys.append(issued["key_id"])
            for printer in site["printers"]:
                fleet.start(demo_site.slug, issued["token"], printer)
        try:
            yield len(fleet.tasks)
        finally:
            results = await fleet.shut_down(admin)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        raise DemoFailed(f"a factory agent stopped with {failed[0]!r}")


async def print_orders(
    admin: httpx.AsyncClient,
    tech: httpx.AsyncClient,
    base_url: str,
    orders: dict[str, Any],
    state_root: Path,
    say: Say,
) -> dict[str, Any]:
    """Let the sites' agents print the placed orders; wait until each is printed."""
    say("\nPrinting (a simulated factory agent per site claims, prints and completes its jobs):")
    printed = {}
    async with _factory_agents(admin, base_url, state_root) as agents:
        started = time.perf_counter()
        for key in ("normal", "sla_forced"):
            order_id = orders[key]["order_id"]
            # The courier may have the part already by the time we look.
            order = await until(tech, f"/orders/{order_id}", lambda o: o["status"] in PRINTED)
            events = ok(await tech.get(f"/orders/{order_id}/events"), 200)
            weight = next(e for e in reversed(events) if e["kind"] == "printed")["data"].get("part_weight_g")
            where = order["routing"]["quote"]
            printed[key] = {
                "site": where["site_slug"],
                "printer": where["printer_key"],
                "status": order["status"],
            }
            say(
                f"  {key}: printed at {where['site_slug']} on {where['printer_key']} after "
                f"{time.perf_counter() - started:.1f} s (simulated"
                + (f", {weight:.1f} g)" if weight is not None else ")")
            )
    return {"agents": agents, "orders": printed}
