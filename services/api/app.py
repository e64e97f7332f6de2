"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from services.api.edge import EdgeGuard, document
from services.api.endpoints import (
    accounts,
    factory,
    health,
    metrics,
    orders,
    parts,
    print_jobs,
    shipping,
    sites,
    webhook_endpoints,
    webhooks,
)
from services.api.errors import install_error_handlers
from services.api.idempotency import IdempotentReplay, replay_response
from services.api.observability import RequestObservation, bind_path_ids
from services.api.resources import AppResources
from services.config import Settings

DESCRIPTION = """
Spareflow prints spare parts on demand at the nearest microfactory that meets the SLA.

Authenticate with `Authorization: Bearer <API key>`. Every error is
`{"error": {"code": "...", "message": "...", "details": ...}}`; branch on `code`.
A technician's key sees its own organization's parts and orders only; anything else answers 404.

`POST /orders` requires an `Idempotency-Key` header, as in the IETF Idempotency-Key draft: the same key
and body within 48 hours replays the stored answer (`Idempotent-Replayed: true`), the same key with a
different body answers 422 `idempotency_key_reused`, and a retry while the first request runs answers
409 `idempotency_key_in_flight`. A request that failed stores nothing; retry it with the same key.
"""


class _App(FastAPI):
    def openapi(self) -> dict[str, Any]:
        # In place and idempotent: FastAPI keeps the document it generated once and returns it again.
        return document(super().openapi())


def create_app(settings: Settings | None = None, *, redis_url: str | None = None) -> FastAPI:
    """The API. ``redis_url`` defaults to the configured one; the CLI passes an embedded Redis's URL."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = await AppResources.open(settings, redis_url or settings.redis_url)
        app.state.resources = resources
        try:
            yield
        finally:
            await resources.close()

    app = _App(
        title="Spareflow",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(bind_path_ids)],
    )
    # Added first, so it runs inside RequestObservation: the edge's refusals are logged and counted too.
    app.add_middleware(EdgeGuard, max_json_body_bytes=settings.max_json_body_bytes)
    app.add_middleware(RequestObservation)
    install_error_handlers(app)
    app.add_exception_handler(IdempotentReplay, replay_response)
    app.include_router(health.router)
    app.include_router(accounts.router)
    app.include_router(parts.router)
    app.include_router(orders.router)
    app.include_router(print_jobs.router)
    app.include_router(factory.router)
    app.include_router(sites.router)
    app.include_router(shipping.router)
    app.include_router(webhooks.router)
    app.include_router(webhook_endpoints.router)
    app.include_router(metrics.router)
    return app
