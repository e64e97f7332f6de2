"""``spareflow worker`` as a real process, as a deployment runs it: its Prometheus port, and the liveness
check a probe runs beside it (``spareflow worker --check``), which fails once the worker is gone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from services.config import Settings
from tests.reliability.chaos import WORKER_COMMAND, ServiceProcess, free_port, service_env, wait_until

pytestmark = pytest.mark.parametrize("migrated_url", ["postgresql"], indirect=True)

START_TIMEOUT_S = 30.0
LEASE_S = 2.0  # the health check's period too: a dead worker's check fails within it, plus a second


async def liveness(env: dict[str, str]) -> int:
    checked = await asyncio.create_subprocess_exec(
        *WORKER_COMMAND,
        "--check",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(checked.wait(), 30)


async def test_worker_serves_metrics_and_its_liveness_check_follows_it(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    env = service_env(settings, job_lease_s=LEASE_S, worker_metrics_port=port, api_host="127.0.0.1")
    worker = ServiceProcess("worker", WORKER_COMMAND, env, tmp_path)
    assert await liveness(env) == 1  # no worker yet

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:

        async def scraped() -> bool:
            try:
                return (await client.get("/metrics")).status_code == 200
            except httpx.TransportError:
                return False

        async def alive() -> bool:
            return await liveness(env) == 0

        await worker.start()
        try:
            assert await wait_until(scraped, within=START_TIMEOUT_S), "the worker's metrics port"
            assert await wait_until(alive, within=START_TIMEOUT_S), "the worker's first health check"
            text = (await client.get("/metrics")).text
        finally:
            await worker.kill()

    # The worker's own counters, at 0 before anything went wrong (alerts on a rate need the series).
    assert (
        'spareflow_courier_errors_total{code="courier_unavailable",courier="local",operation="book"} 0.0'
        in text
    )
    assert "spareflow_lease_expiries_total 0.0" in text

    # SIGKILLed: nothing cleaned up, and still the check fails once the worker's last word lapses.
    async def dead() -> bool:
        return await liveness(env) == 1

    assert await wait_until(dead, within=LEASE_S + 5), "the check to notice the dead worker"
