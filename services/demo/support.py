"""What every demo stage shares: the answer check, polling until the worker is done, the demo's failure and
its time formats."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

Say = Callable[[str], None]

WAIT_S = 300.0


class DemoFailed(RuntimeError):
    pass


def ok(response: httpx.Response, *expected: int) -> Any:
    """The answer's JSON body; ``DemoFailed`` naming the request when its status is not expected."""
    if response.status_code not in expected:
        raise DemoFailed(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        )
    return response.json()


async def until(
    client: httpx.AsyncClient, path: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Poll ``path`` until ``done`` holds of its body; ``DemoFailed`` after ``WAIT_S``."""
    deadline = time.monotonic() + WAIT_S
    while True:
        body = dict(ok(await client.get(path), 200))
        if done(body):
            return body
        if time.monotonic() > deadline:
            raise DemoFailed(f"{path} still not done after {WAIT_S:.0f} s: {body.get('status')}")
        await asyncio.sleep(0.2)


def when(value: str, fmt: str = "%a %d %b %H:%M UTC") -> str:
    return datetime.fromisoformat(value).astimezone(UTC).strftime(fmt)


def span(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 90 * 60 else f"{seconds / 3600:.1f} h"
