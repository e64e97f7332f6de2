"""arq's worker with short, renewed claims on running jobs, so that a killed worker's jobs run again soon."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix
from arq.worker import Worker, async_check_health
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


class LeasedWorker(Worker):
    """arq marks a started job in progress for its longest job timeout plus 10 s (22 minutes here, as slicing
    may take 15), and until that mark expires no other worker runs the job: a SIGKILLed worker's jobs would
    wait that long. Here the mark lasts ``lease_s`` and is renewed every third of it while the job runs, so a
    dead worker's jobs run again within ``lease_s`` while a long slice keeps its own. Job time limits are
    unchanged (arq enforces them in the worker that runs the job)."""

    def __init__(self, *, lease_s: float, **kwargs: Any) -> None:
        super().__init__(
            **kwargs,
            health_check_key=health_check_key(kwargs["queue_name"]),
            # arq's default is an hour: a liveness probe would learn of a hung worker that late.
            health_check_interval=lease_s,
        )
        self.in_progress_timeout_s = lease_s

    async def main(self) -> None:
        renewing = asyncio.create_task(self._renew_claims())
        try:
            await super().main()
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def _renew_claims(self) -> None:
        lease_ms = int(self.in_progress_timeout_s * 1000)
        while True:
            await asyncio.sleep(self.in_progress_timeout_s / 3)
            # self.tasks: every job this worker claimed and has not finished (arq removes it after the job).
            if not self.tasks or self._pool is None:
                continue
            try:
                async with self.pool.pipeline(transaction=False) as pipe:
                    for job_id in list(self.tasks):
                        # A released claim stays released: PEXPIRE does not create keys.
                        pipe.pexpire(in_progress_key_prefix + job_id, lease_ms)
                    await pipe.execute()
            except RedisError as exc:
                # Redis is away; arq's own loop notices too. The claims lapse and other workers take over.
                logger.warning("could not renew job claims: %s", exc)


def health_check_key(queue_name: str) -> str:
    """Per host (a pod's name in Kubernetes), so that one live worker does not vouch for a dead one."""
    return f"{queue_name}:health-check:{socket.gethostname()}"


async def check_health(redis_url: str, queue_name: str) -> bool:
    """Whether this host's worker wrote its health check lately (``spareflow worker --check``)."""
    return await async_check_health(RedisSettings.from_dsn(redis_url), health_check_key(queue_name)) == 0
