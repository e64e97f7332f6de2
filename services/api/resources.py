"""Long-lived objects the API shares across requests, built once in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from sqlalchemy.ext.asyncio import AsyncEngine

from parts_catalog.storage import LocalBlobStore
from services.config import Settings
from services.db import SessionFactory, create_engine, session_factory
from services.idempotency.store import IdempotencyStore
from services.routing.snapshot import SnapshotCache


@dataclass(frozen=True, slots=True)
class AppResources:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    blobs: LocalBlobStore
    # None without a Redis: work then waits for a worker's reconciler to find it.
    queue: ArqRedis | None
    snapshots: SnapshotCache
    idempotency: IdempotencyStore

    @classmethod
    async def open(cls, settings: Settings, redis_url: str | None) -> AppResources:
        engine = create_engine(settings.resolved_database_url)
        queue = (
            await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=settings.queue_name)
            if redis_url
            else None
        )
        sessions = session_factory(engine)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            blobs=LocalBlobStore(settings.resolved_blob_dir),
            queue=queue,
            snapshots=SnapshotCache(max_age_s=settings.routing_snapshot_max_age_s),
            idempotency=IdempotencyStore(
                retention=timedelta(hours=settings.idempotency_retention_hours),
                lock_timeout=timedelta(seconds=settings.idempotency_lock_timeout_s),
            ),
        )

    async def close(self) -> None:
        if self.queue is not None:
            await self.queue.aclose()
        await self.engine.dispose()
