"""The API served on a loopback port inside a running event loop (the demo; tests with real HTTP peers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from services.api.app import create_app
from services.config import Settings


@asynccontextmanager
async def serve_in_background(settings: Settings, redis_url: str | None = None) -> AsyncIterator[str]:
    """Serve the API on 127.0.0.1 (a free port) while the block runs; yields its base URL."""
    app = create_app(settings, redis_url=redis_url)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            raise RuntimeError(f"the API server did not start: {task.exception()!r}")
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
