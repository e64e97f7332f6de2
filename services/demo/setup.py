"""Setting the stage: the migrated database, an admin key, the API and a worker, organizations and their
technicians."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from services.accounts.models import Role
from services.accounts.service import AccountsService
from services.api.background import serve_in_background
from services.config import Settings
from services.db import create_engine, session_factory, transaction
from services.demo.support import ok
from services.migrate import upgrade
from services.workers.settings import build_worker

# Four hours a second: a next-day standard parcel (18 h and more) arrives in about five seconds.
_COURIER_SPEED = 4 * 3600.0


async def migrate(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade(settings.resolved_database_url)


async def bootstrap_admin(settings: Settings) -> str:
    """A fresh admin key, issued straight in the database: the token the demo's admin client uses."""
    engine = create_engine(settings.resolved_database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            issued = await AccountsService(session).issue_key(Role.ADMIN, name="demo bootstrap")
    finally:
        await engine.dispose()
    return issued.token


@asynccontextmanager
async def _worker(settings: Settings, redis_url: str) -> AsyncIterator[None]:
    worker = build_worker(settings, redis_url, handle_signals=False)
    task = asyncio.create_task(worker.async_run())
    try:
        yield
    finally:
        await worker.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@asynccontextmanager
async def platform(
    settings: Settings, redis_url: str, admin_token: str
) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """The API on a loopback port and a worker, running while the block runs: (base URL, admin client)."""
    async with (
        serve_in_background(settings, redis_url) as base_url,
        # The worker's built-in courier posts its tracking webhooks to this API, and its parcels travel
        # four hours a second.
        _worker(
            settings.model_copy(
                update={"public_base_url": base_url, "local_courier_time_scale": _COURIER_SPEED}
            ),
            redis_url,
        ),
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60
        ) as admin,
    ):
        yield base_url, admin


async def organization(client: httpx.AsyncClient, slug: str, name: str) -> dict[str, Any]:
    """The organization with this slug, created when a previous run did not."""
    existing = [o for o in ok(await client.get("/organizations"), 200) if o["slug"] == slug]
    if existing:
        return dict(existing[0])
    return dict(ok(await client.post("/organizations", json={"slug": slug, "name": name}), 201))


async def technician_client(admin: httpx.AsyncClient, org_id: str) -> httpx.AsyncClient:
    """A client holding a new technician key of the organization (the caller closes it)."""
    issued = ok(
        await admin.post("/keys", json={"role": "technician", "organization_id": org_id, "name": "demo"}), 201
    )
    return httpx.AsyncClient(base_url=admin.base_url, headers={"Authorization": f"Bearer {issued['token']}"})
