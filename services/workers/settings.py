"""The arq worker: its functions, cron schedule and lifecycle hooks."""

from __future__ import annotations

from typing import Any

from arq import cron
from arq.connections import RedisSettings
from arq.worker import func

from services.config import Settings
from services.workers.context import on_job_start, on_shutdown, on_startup
from services.workers.jobs.factories import watch_factories
from services.workers.jobs.geometry import check_revision, prepare_print, reconcile
from services.workers.jobs.maintenance import purge_idempotency_keys, sweep_orphan_blobs
from services.workers.jobs.orders import reoptimize_orders, reroute_site, watch_orders
from services.workers.jobs.outbound_webhooks import deliver_webhook, publish_order_events, reconcile_webhooks
from services.workers.jobs.shipping import (
    drive_local_courier,
    process_inbound_webhook,
    reconcile_shipping,
    ship_order,
)
from services.workers.leased import LeasedWorker

# Typed loosely: arq's WorkerCoroutine protocol only admits functions taking (ctx, *args, **kwargs).
FUNCTIONS: list[Any] = [
    # Wake-up calls for a row keep deterministic ids (one queued copy at a time) but no stored result:
    # a kept result would block the next wake-up of the same row (a job re-woken once its model is checked).
    func(check_revision, keep_result=0),
    func(prepare_print, keep_result=0),
    func(reroute_site, keep_result=0),
    func(ship_order, keep_result=0),
    func(process_inbound_webhook, keep_result=0),
    func(publish_order_events, keep_result=0),
    func(deliver_webhook, keep_result=0),
    reconcile_webhooks,
    drive_local_courier,
    reconcile_shipping,
    reconcile,
    sweep_orphan_blobs,
    purge_idempotency_keys,
    watch_orders,
    reoptimize_orders,
    watch_factories,
]


def _every(minutes: int) -> set[int]:
    # Cron minutes of the hour; intervals of an hour or more run once an hour.
    return set(range(0, 60, min(minutes, 60)))


def cron_jobs(settings: Settings) -> list[Any]:
    return [
        # unique=True: with many workers, one of them runs each tick.
        cron(reconcile, second={0}, unique=True, run_at_startup=True),
        # Hourly is plenty: the grace period is an hour, and keys are kept for a day or more.
        # Every 10 s: a lapsed lease should not keep a part from being printed for long.
        cron(watch_factories, second={5, 15, 25, 35, 45, 55}, unique=True),
        # The built-in courier's events are minutes apart in real time; compressed (demos), seconds apart.
        cron(
            drive_local_courier,
            second=set(range(60)) if settings.local_courier_time_scale >= 60 else {50},
            unique=True,
        ),
        cron(reconcile_shipping, second={20}, unique=True, run_at_startup=True),
        # Every 10 s: outbound webhooks whose wake-up Redis lost, and retries that came due, go out soon.
        cron(reconcile_webhooks, second={8, 18, 28, 38, 48, 58}, unique=True, run_at_startup=True),
        cron(sweep_orphan_blobs, minute={7}, second={30}, unique=True),
        cron(purge_idempotency_keys, minute={37}, second={30}, unique=True),
        cron(watch_orders, minute=_every(settings.watchdog_interval_minutes), second={15}, unique=True),
        cron(
            reoptimize_orders, minute=_every(settings.reoptimize_interval_minutes), second={45}, unique=True
        ),
    ]


def build_worker(
    settings: Settings, redis_url: str, *, burst: bool = False, handle_signals: bool = True
) -> LeasedWorker:
    return LeasedWorker(
        lease_s=settings.job_lease_s,
        functions=FUNCTIONS,
        # A burst worker works off what is queued and stops: of the schedule, only the start-up runs.
        cron_jobs=[c for c in cron_jobs(settings) if c.run_at_startup] if burst else cron_jobs(settings),
        redis_settings=RedisSettings.from_dsn(redis_url),
        queue_name=settings.queue_name,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        on_job_start=on_job_start,
        ctx={"settings": settings},
        burst=burst,
        handle_signals=handle_signals,
        max_jobs=max(2, settings.mesh_workers * 2),
        poll_delay=settings.worker_poll_delay_s,
        # Outlives the longest legitimate job (check, then orientation and slicing) with a margin.
        job_timeout=int(settings.check_timeout_s * 2 + settings.slice_timeout_s + 60),
        # Retries (arq Retry) beyond the service's own attempt count are never needed.
        max_tries=settings.max_job_attempts + 1,
        keep_result=60,
    )
