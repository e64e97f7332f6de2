"""Fixtures the chaos scenarios with worker processes share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.api.background import serve_in_background
from services.config import Settings
from tests.reliability.chaos import WORKER_COMMAND, ServiceProcess, Supervisor, service_env


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Settings]:
    """The API on a loopback port; the settings tell the workers' courier where to post."""
    async with serve_in_background(settings, settings.redis_url) as base_url:
        yield settings.model_copy(update={"public_base_url": base_url})


@pytest.fixture
async def workers(
    request: pytest.FixtureRequest, served: Settings, tmp_path: Path
) -> AsyncIterator[Supervisor]:
    """The scenario module's ``WORKERS`` worker processes against the served API, supervised."""
    env = service_env(served)
    count: int = request.module.WORKERS
    supervisor = Supervisor(
        [ServiceProcess(f"worker-{n}", WORKER_COMMAND, env, tmp_path) for n in range(count)]
    )
    try:
        yield supervisor
    finally:
        await supervisor.stop()
