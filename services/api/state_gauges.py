"""What the database and the queue hold, read when Prometheus scrapes the API.

Every API replica reads the same rows, so every replica reports the same values (aggregate with ``max``).
Reading at scrape time keeps the numbers true after restarts and across replicas, which counters kept in
one process could not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from prometheus_client import CollectorRegistry, Gauge
from redis.exceptions import RedisError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.couriers.providers.local.table import LocalParcel
from services.db import SessionFactory
from services.orders.models import Order
from services.orders.states import TERMINAL, OrderStatus
from services.printing.models import PrintJob, PrintJobStatus
from services.webhooks.inbound.models import InboundStatus, InboundWebhook

log = logging.getLogger(__name__)

# Ends of the line: how long ago a job got there says nothing about work waiting.
_SETTLED = frozenset({PrintJobStatus.DONE, PrintJobStatus.FAILED, PrintJobStatus.CANCELLED})
# A scrape looks at no more of the queue than this; a backlog beyond it is an outage either way.
_QUEUE_SCAN_LIMIT = 5000


@dataclass(frozen=True, slots=True)
class JobsInState:
    count: int
    # Seconds since the longest-waiting one entered the state (0 when there is none).
    oldest_age_s: float


@dataclass(frozen=True, slots=True)
class QueueState:
    ready: int  # due and not taken by a worker
    running: int
    deferred: int  # retries and scheduled runs not yet due
    oldest_ready_age_s: float


@dataclass(frozen=True, slots=True)
class PlatformState:
    orders: dict[OrderStatus, int]
    orders_at_risk: int
    print_jobs: dict[PrintJobStatus, JobsInState]
    inbound_webhooks: dict[InboundStatus, int]
    local_parcels_parked: int
    queue: QueueState | None


class StateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def orders_by_status(self) -> dict[OrderStatus, int]:
        rows = await self.session.exec(select(Order.status, sa.func.count()).group_by(Order.status))
        return {OrderStatus(status): count for status, count in rows}

    async def inbound_webhooks_by_status(self) -> dict[InboundStatus, int]:
        query = select(InboundWebhook.status, sa.func.count()).group_by(InboundWebhook.status)
        return {InboundStatus(status): count for status, count in await self.session.exec(query)}

    async def local_parcels_parked(self) -> int:
        query = select(sa.func.count()).where(col(LocalParcel.parked_at).is_not(None))
        return (await self.session.exec(query)).one()

    async def orders_at_risk(self, now: datetime) -> int:
        """Open orders flagged at risk, or whose current ETA (or, without one, the clock) is past need-by."""
        late = sa.func.coalesce(col(Order.eta), now) > col(Order.need_by)
        query = select(sa.func.count()).where(
            col(Order.status).not_in(list(TERMINAL)),
            sa.or_(col(Order.status) == OrderStatus.AT_RISK, late),
        )
        return (await self.session.exec(query)).one()

    async def print_jobs(self, now: datetime) -> dict[PrintJobStatus, JobsInState]:
        # updated_at: a job's row changes when it enters a state (and on heartbeats while printing).
        query = select(PrintJob.status, sa.func.count(), sa.func.min(PrintJob.updated_at)).group_by(
            PrintJob.status
        )
        found = {}
        for status, count, oldest in await self.session.exec(query):
            found[PrintJobStatus(status)] = JobsInState(count, max(0.0, (now - oldest).total_seconds()))
        return found


async def queue_state(queue: ArqRedis, queue_name: str, now: datetime) -> QueueState:
    now_ms = now.timestamp() * 1000
    due = await queue.zrangebyscore(
        queue_name, "-inf", now_ms, start=0, num=_QUEUE_SCAN_LIMIT, withscores=True
    )
    deferred = await queue.zcount(queue_name, f"({now_ms}", "+inf")
    async with queue.pipeline(transaction=False) as pipe:
        for job_id, _ in due:
            pipe.exists(in_progress_key_prefix + job_id.decode())
        taken = await pipe.execute()
    waiting = [score for (_, score), running in zip(due, taken, strict=True) if not running]
    return QueueState(
        ready=len(waiting),
        running=len(due) - len(waiting),
        deferred=deferred,
        oldest_ready_age_s=max(0.0, (now_ms - min(waiting)) / 1000) if waiting else 0.0,
    )


def render(state: PlatformState) -> CollectorRegistry:
    """The state as gauges in a registry of their own (built per scrape, so no stale label survives)."""
    registry = CollectorRegistry(auto_describe=True)
    orders = Gauge("spareflow_orders", "Orders by status", ["status"], registry=registry)
    for status in OrderStatus:
        orders.labels(status.value).set(state.orders.get(status, 0))
    Gauge(
        "spareflow_orders_sla_at_risk",
        "Open orders whose current ETA is past their need-by time, or flagged at_risk",
        registry=registry,
    ).set(state.orders_at_risk)
    jobs = Gauge("spareflow_print_jobs", "Print jobs by status", ["status"], registry=registry)
    ages = Gauge(
        "spareflow_print_job_oldest_age_seconds",
        "Time since the longest-waiting print job of each status entered it",
        ["status"],
        registry=registry,
    )
    for job_status in PrintJobStatus:
        held = state.print_jobs.get(job_status, JobsInState(0, 0.0))
        jobs.labels(job_status.value).set(held.count)
        if job_status not in _SETTLED:
            ages.labels(job_status.value).set(held.oldest_age_s)
    inbound = Gauge(
        "spareflow_inbound_webhooks",
        "Inbound webhooks kept, by status (parked: failed every attempt, waiting for an operator)",
        ["status"],
        registry=registry,
    )
    for inbound_status in InboundStatus:
        inbound.labels(inbound_status.value).set(state.inbound_webhooks.get(inbound_status, 0))
    Gauge(
        "spareflow_local_courier_parcels_parked",
        "Parcels of the built-in courier whose tracking webhooks it stopped resending (refused for good, or "
        "attempts used up), waiting for an operator",
        registry=registry,
    ).set(state.local_parcels_parked)
    if state.queue is not None:
        queued = Gauge(
            "spareflow_queue_jobs", "Jobs in the work queue, by state", ["state"], registry=registry
        )
        queued.labels("ready").set(state.queue.ready)
        queued.labels("running").set(state.queue.running)
        queued.labels("deferred").set(state.queue.deferred)
        Gauge(
            "spareflow_queue_oldest_ready_age_seconds",
            "How long the longest-waiting due job has waited for a worker",
            registry=registry,
        ).set(state.queue.oldest_ready_age_s)
    return registry


async def read_state(
    sessions: SessionFactory, queue: ArqRedis | None, queue_name: str, now: datetime
) -> PlatformState:
    """Raises the database's errors; a queue that does not answer is left out (its series go absent)."""
    async with sessions() as session:
        repo = StateRepository(session)
        orders = await repo.orders_by_status()
        at_risk = await repo.orders_at_risk(now)
        jobs = await repo.print_jobs(now)
        inbound = await repo.inbound_webhooks_by_status()
        parked = await repo.local_parcels_parked()
    queued = None
    if queue is not None:
        try:
            queued = await queue_state(queue, queue_name, now)
        except (RedisError, OSError) as exc:
            log.warning("queue state unavailable: %s", exc)
    return PlatformState(
        orders=orders,
        orders_at_risk=at_risk,
        print_jobs=jobs,
        inbound_webhooks=inbound,
        local_parcels_parked=parked,
        queue=queued,
    )
