"""Mesh work in worker processes: a runaway task is killed at its time limit and the pool recovers."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from services.workers.mesh_pool import MeshPool, MeshTimeout, MeshWorkerCrashed


def sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def allocate(megabytes: int) -> int:
    return len(bytearray(megabytes * 1024 * 1024))


def die() -> None:
    os._exit(3)


@pytest.fixture
def pool() -> Iterator[MeshPool]:
    created = MeshPool(workers=1, memory_limit_bytes=1024**3)
    yield created
    created.close()


async def test_work_runs_in_another_process(pool: MeshPool) -> None:
    assert await pool.run(sleep_then_pid, 0, timeout_s=60) != os.getpid()


async def test_a_task_past_its_time_is_killed_and_the_pool_recovers(pool: MeshPool) -> None:
    started = time.monotonic()
    with pytest.raises(MeshTimeout):
        await pool.run(sleep_then_pid, 60, timeout_s=1)
    assert time.monotonic() - started < 10
    assert await pool.run(sleep_then_pid, 0, timeout_s=60) > 0


async def test_memory_beyond_the_limit_fails_the_task_not_the_worker(pool: MeshPool) -> None:
    with pytest.raises(MemoryError):
        await pool.run(allocate, 2048, timeout_s=60)
    assert await pool.run(allocate, 10, timeout_s=60) == 10 * 1024 * 1024


async def test_a_dead_process_is_a_retryable_crash(pool: MeshPool) -> None:
    with pytest.raises(MeshWorkerCrashed) as crashed:
        await pool.run(die, timeout_s=60)
    assert crashed.value.retryable
    assert await pool.run(sleep_then_pid, 0, timeout_s=60) > 0
