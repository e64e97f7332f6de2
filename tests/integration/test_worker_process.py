"""``spareflow worker`` as a real process, as a deployment runs it: its Prometheus port, and the liveness
check a probe runs beside it (``spareflow worker --check``), which fails once the worker is gone."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from services.config import Settings
from tests.reliability.chaos import WORKER_COMMAND, ServiceProcess, free_port, service_env

pytestmark = pytest.mark.parametrize("migrated_url", ["postgresql"], indirect=True)

START_TIMEOUT_S = 30.0
LEASE_S = 2.0  # the health check's period too: a dead worker's check fails within it, plus a second


def liveness(env: dict[str, str]) -> int:
    return subprocess.run([*WORKER_COMMAND, "--check"], env=env, capture_output=True, timeout=30).returncode


async def until(condition: object, what: str, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(condition):  # type: ignore[arg-type]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_worker_serves_metrics_and_its_liveness_check_follows_it(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    env = service_env(settings, job_lease_s=LEASE_S, worker_metrics_port=port, api_host="127.0.0.1")
    worker = ServiceProcess("worker", WORKER_COMMAND, env, tmp_path)
    assert liveness(env) == 1  # no worker yet

    await worker.start()
    try:

        def scraped() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        await until(scraped, "the worker's metrics port")
        await until(lambda: liveness(env) == 0, "the worker's first health check")
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    finally:
        await worker.kill()

    # The worker's own counters, at 0 before anything went wrong (alerts on a rate need the series).
    assert (
        'spareflow_courier_errors_total{code="courier_unavailable",courier="local",operation="book"} 0.0'
        in text
    )
    assert "spareflow_lease_expiries_total 0.0" in text
    # SIGKILLed: nothing cleaned up, and still the check fails once the worker's last word lapses.
    await until(lambda: liveness(env) == 1, "the check to notice the dead worker", timeout_s=LEASE_S + 5)
