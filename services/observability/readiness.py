"""Readiness: can this process serve requests, i.e. do its database and Redis answer?"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import sqlalchemy as sa
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine

# Shorter than any sensible probe timeout: a probe that times out says less than one that answers 503.
CHECK_TIMEOUT_S = 2.0


async def _answers(check: Awaitable[object]) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await check
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as exc:
        # Whatever the driver raises, the answer is the same: not ready, and why.
        return f"{type(exc).__name__}: {exc}"[:200]
    return "ok"


async def _select_one(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(sa.text("SELECT 1"))


async def readiness(engine: AsyncEngine, queue: ArqRedis | None) -> dict[str, str]:
    """Each dependency's state, ``ok`` or why not; Redis is left out where the process runs without one."""
    checks = {"database": _answers(_select_one(engine))}
    if queue is not None:
        checks["redis"] = _answers(queue.ping())
    results = await asyncio.gather(*checks.values())
    return dict(zip(checks, results, strict=True))
