"""The factory agent against a real OctoPrint: an order goes from the API through the agent to OctoPrint's
Virtual Printer and back.

The API is served on a loopback port (``serve_in_background``), the agent runs in-process as an asyncio task
with the site's factory key and an ``OctoPrintHost``; OctoPrint is started once for the module
(``tests.peers``) and the suite is skipped without ``../shared``. The printers slice with the built-in
estimator (outline-only G-code, no heating) with a coarse profile, and the part is the demo's small cable
clip: the Virtual Printer prints it in about 10 s.
PostgreSQL only: the lease and order logic under test is the same on SQLite, and a print costs real time.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from services.api.background import serve_in_background
from services.config import Settings
from services.demo.meshes import DEMO_PARTS
from services.factory_agent.agent import FactoryAgent
from services.factory_agent.client import FactoryApiClient
from services.factory_agent.events import EventLog
from services.factory_agent.octoprint import OctoPrintHost
from tests.builders import (
    BREMEN,
    HAMBURG,
    bearer,
    lease_outcomes,
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
from tests.peers import OCTOPRINT_KEY, octoprint_server
from tests.workers import run_worker_until_idle

# One backend: see the module's docstring.
pytestmark = [pytest.mark.slow, pytest.mark.parametrize("migrated_url", ["postgresql"], indirect=True)]

T = TypeVar("T")
# How long a print of the estimator's G-code may take on the Virtual Printer, with room for a slow CI box.
PRINT_WITHIN_S = 45.0
PART_NUMBER = "CLP-12"
CLIP = next(i for i, part in enumerate(DEMO_PARTS) if part.part_number == "SF-CLP-4012")


@pytest.fixture(scope="module")
def octoprint_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with octoprint_server(tmp_path_factory) as url:
        yield url


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A waiting claim sees a job at once; one failed print at a site re-routes its order.
    return settings.model_copy(update={"factory_claim_poll_s": 0.1, "max_print_failures_per_site": 1})


@pytest.fixture
async def octoprint(octoprint_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """OctoPrint's REST API as a person at the printer (or the test) uses it."""
    async with httpx.AsyncClient(
        base_url=octoprint_url, headers={"X-Api-Key": OCTOPRINT_KEY}, timeout=10
    ) as api:
        yield api
        # The next test gets an idle printer, whatever this one left running.
        await api.post("/api/job", json={"command": "cancel"})
        await until(lambda: octoprint_state(api), lambda s: s == "Operational", "OctoPrint idle", 20)


@dataclass
class Shop:
    tech: str
    hamburg: dict[str, Any]
    bremen: dict[str, Any]
    key: str  # Hamburg's factory key
    order: dict[str, Any]
    job_id: str


def draft_printers() -> list[dict[str, Any]]:
    """One PETG printer with a coarse 0.8 mm nozzle profile that slices with the estimator."""
    return [
        {
            "key": "mk4-01",
            "model": "i3 MK4-class",
            "build_volume": {"x_mm": 250, "y_mm": 210, "z_mm": 220},
            "nozzle_mm": 0.8,
            "materials_supported": ["PLA", "PETG", "ASA"],
            "materials_loaded": ["PETG"],
            "profile": {
                "name": "draft-petg-0.6",
                "material": "PETG",
                "nozzle_diameter_mm": 0.8,
                "line_width_mm": 0.9,
                "layer_height_mm": 0.6,
                "first_layer_height_mm": 0.6,
            },
            "slicer": "estimator",
        }
    ]


async def clip_part(client: httpx.AsyncClient, admin: str, settings: Settings, organization_id: str) -> None:
    """The demo's cable clip, checked: small and flat, a print of a few seconds on the Virtual Printer."""
    part = await make_part(client, admin, organization_id=organization_id, part_number=PART_NUMBER)
    response = await upload(client, admin, part["id"], model_bytes(index=CLIP))
    assert response.status_code == 202, response.text
    await run_worker_until_idle(settings)
    revision = await client.get(
        f"/parts/{part['id']}/revisions/{response.json()['id']}", headers=bearer(admin)
    )
    assert revision.json()["status"] == "ready", revision.text


async def prepared_order(client: httpx.AsyncClient, settings: Settings) -> Shop:
    """Round-the-clock sites in Hamburg and Bremen with draft printers, one order for the clip routed to
    Hamburg and prepared (its print job ready), and Hamburg's factory key."""
    admin = await make_admin_token(settings)
    org = await make_account(client, admin, "organizations", slug="acme")
    await clip_part(client, admin, settings, org["id"])
    hamburg = await make_factory(client, admin, "hamburg", HAMBURG, printers=draft_printers())
    bremen = await make_factory(client, admin, "bremen", BREMEN, printers=draft_printers())
    tech = await make_key(client, admin, "technician", organization_id=org["id"])
    response = await place_order(client, tech, order_body(PART_NUMBER))
    assert response.status_code == 201, response.text
    assert site_of(response.json()) == hamburg["id"]
    await run_worker_until_idle(settings)
    key = await make_key(client, admin, "factory", site_id=hamburg["id"])
    order = await order_of(client, tech, response.json()["id"])
    assert order["status"] == "ready_for_print", order
    job = (await client.get(f"/factory/jobs/{order['print_job_id']}", headers=bearer(key))).json()
    assert (job["status"], job["printer_id"]) == ("ready", hamburg["printers"][0]["id"]), job
    return Shop(tech, hamburg, bremen, key, order, job["id"])


def site_of(order: dict[str, Any]) -> str:
    return str(order["routing"]["quote"]["site_id"])


async def order_of(client: httpx.AsyncClient, tech: str, order_id: str) -> dict[str, Any]:
    response = await client.get(f"/orders/{order_id}", headers=bearer(tech))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def octoprint_state(api: httpx.AsyncClient) -> str:
    response = await api.get("/api/job")
    response.raise_for_status()
    return str(response.json()["state"])


async def until(read: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str, within_s: float) -> T:
    """Poll ``read()`` until ``done`` holds of its value; fail after ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while True:
        value = await read()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"{what}: still {value!r} after {within_s} s"
        await asyncio.sleep(0.2)


@asynccontextmanager
async def running_agent(
    settings: Settings, octoprint_url: str, shop: Shop, state_dir: Path
) -> AsyncIterator[tuple[asyncio.Task[None], io.StringIO]]:
    """The API served on loopback and Hamburg's agent for its printer on OctoPrint, for the block.

    Yields the agent's task and its JSON log; stops the agent (and checks it stopped cleanly) afterwards.
    """
    log = io.StringIO()
    async with serve_in_background(settings, settings.redis_url) as base_url:
        client = FactoryApiClient(base_url, shop.key)
        host = OctoPrintHost(octoprint_url, OCTOPRINT_KEY)
        agent = FactoryAgent(
            client,
            host,
            printer_id=uuid.UUID(shop.hamburg["printers"][0]["id"]),
            materials=None,
            state_dir=state_dir,
            log=EventLog(log),
            claim_wait_s=1.0,
            poll_s=0.25,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            yield task, log
        finally:
            stop.set()
            try:
                # A claim in flight ends within claim_wait_s; a print's status poll within poll_s.
                await asyncio.wait_for(task, 15)
            finally:
                await client.aclose()
                await host.aclose()


def order_while_agent_runs(
    client: httpx.AsyncClient, shop: Shop, task: asyncio.Task[None], log: io.StringIO
) -> Callable[[], Awaitable[dict[str, Any]]]:
    """A reader of the shop's order that fails at once if the agent has stopped."""

    async def read() -> dict[str, Any]:
        if task.done():
            task.result()  # raises what stopped the agent
            pytest.fail(f"the agent stopped early:\n{log.getvalue()}")
        return await order_of(client, shop.tech, shop.order["id"])

    return read


async def test_an_order_is_printed_on_octoprint(
    client: httpx.AsyncClient,
    settings: Settings,
    octoprint: httpx.AsyncClient,
    octoprint_url: str,
    tmp_path: Path,
) -> None:
    shop = await prepared_order(client, settings)

    async with running_agent(settings, octoprint_url, shop, tmp_path / "agent") as (task, log):
        read = order_while_agent_runs(client, shop, task, log)
        await until(read, lambda o: o["status"] == "printed", "the order", PRINT_WITHIN_S)

    job = (await client.get(f"/factory/jobs/{shop.job_id}", headers=bearer(shop.key))).json()
    assert (job["status"], job["fence"], job["failure_code"]) == ("done", 1, None), job
    events = (await client.get(f"/orders/{shop.order['id']}/events", headers=bearer(shop.tech))).json()
    assert [e["kind"] for e in events][-2:] == ["printing", "printed"]
    # OctoPrint itself says the file under the job's first lease was printed, once, successfully.
    record = await octoprint.get(f"/api/files/local/{shop.job_id}-1.gcode")
    assert record.status_code == 200, record.text
    prints = record.json()["prints"]
    assert (prints["success"], prints["failure"], prints["last"]["success"]) == (1, 0, True), prints
    assert await lease_outcomes(settings, shop.job_id) == [(1, "completed")]
    lines = log.getvalue()
    assert '"event": "completed"' in lines, lines


async def test_a_print_cancelled_on_octoprint_fails_the_job_and_reroutes_the_order(
    client: httpx.AsyncClient,
    settings: Settings,
    octoprint: httpx.AsyncClient,
    octoprint_url: str,
    tmp_path: Path,
) -> None:
    shop = await prepared_order(client, settings)
    host_file = f"{shop.job_id}-1.gcode"

    async with running_agent(settings, octoprint_url, shop, tmp_path / "agent") as (task, log):
        read = order_while_agent_runs(client, shop, task, log)

        async def printing_file() -> tuple[str, str | None]:
            if task.done():
                task.result()
                pytest.fail(f"the agent stopped early:\n{log.getvalue()}")
            body = (await octoprint.get("/api/job")).json()
            return str(body["state"]), body["job"]["file"]["name"]

        await until(printing_file, lambda s: s == ("Printing", host_file), "OctoPrint's job", 20)
        # A person at the printer cancels the print.
        cancel = await octoprint.post("/api/job", json={"command": "cancel"})
        assert cancel.status_code == 204, cancel.text
        moved = await until(
            read, lambda o: o["status"] not in ("printing", "ready_for_print"), "the order", 20
        )

    # No worker runs here to prepare it for Bremen: it stays rerouted.
    assert moved["status"] == "rerouted", moved
    assert site_of(moved) == shop.bremen["id"]
    job = (await client.get(f"/factory/jobs/{shop.job_id}", headers=bearer(shop.key))).json()
    assert job["status"] == "failed", job
    # The agent reports cancelled_on_printer, worth retrying here; one failure is all this site gets.
    assert job["failure_code"] == "print_failed_repeatedly", job
    assert await lease_outcomes(settings, shop.job_id) == [(1, "failed")]
    events = (await client.get(f"/orders/{shop.order['id']}/events", headers=bearer(shop.tech))).json()
    rerouted = [e for e in events if e["kind"] == "rerouted"]
    assert len(rerouted) == 1, events
    assert rerouted[0]["reason"].startswith("print_job_failed"), rerouted
    record = (await octoprint.get(f"/api/files/local/{host_file}")).json()
    assert record["prints"]["failure"] == 1, record
    assert '"reason": "cancelled_on_printer"' in log.getvalue(), log.getvalue()
