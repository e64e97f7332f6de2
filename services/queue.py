"""Work enqueued inside a transaction goes to arq only after that transaction commits.

Redis carries wake-up calls, not state: if sending fails (Redis down, process killed between commit and
send), the rows still say the work is pending and the reconciler enqueues it again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from arq.connections import ArqRedis
from redis.exceptions import RedisError
from sqlmodel.ext.asyncio.session import AsyncSession

log = logging.getLogger(__name__)

_OUTBOX = "spareflow_outbox"


@dataclass(frozen=True, slots=True)
class QueuedJob:
    function: str
    args: tuple[str, ...]
    # Deterministic, so that the same work enqueued twice while queued runs once.
    job_id: str


def enqueue_after_commit(session: AsyncSession, function: str, *args: str, job_id: str) -> None:
    outbox: list[QueuedJob] = session.info.setdefault(_OUTBOX, [])
    outbox.append(QueuedJob(function=function, args=args, job_id=job_id))


def take_outbox(session: AsyncSession) -> list[QueuedJob]:
    jobs: list[QueuedJob] = session.info.pop(_OUTBOX, [])
    return jobs


async def send(queue: ArqRedis | None, jobs: list[QueuedJob]) -> None:
    if queue is None:
        return
    for job in jobs:
        try:
            await queue.enqueue_job(job.function, *job.args, _job_id=job.job_id)
        except (RedisError, OSError) as exc:
            log.warning("could not enqueue %s(%s): %s; the reconciler will", job.function, job.args, exc)


def backoff_seconds(attempt: int, *, base_s: float = 10.0) -> float:
    """How long a job waits before trying again after failed attempt ``attempt`` (1-based): ``base_s``
    times the attempt squared (10 s, 40 s, 90 s, ...); a courier's API outage or a database restart is
    usually over within minutes."""
    return base_s * attempt**2
