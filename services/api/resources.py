"""Long-lived objects the API shares across requests, built once in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from sqlalchemy.ext.asyncio import AsyncEngine

from parts_catalog.storage import LocalBlobStore
from services.config import Settings
from services.db import SessionFactory, create_engine, session_factory


@dataclass(frozen=True, slots=True)
class AppResources:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    blobs: LocalBlobStore
    # None without a Redis: work then waits for a worker's reconciler to find it.
    queue: ArqRedis | None

    @classmethod
    async def open(cls, settings: Settings, redis_url: str | None) -> AppResources:
        engine = create_engine(settings.resolved_database_url)
        queue = (
            await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=settings.queue_name)
            if redis_url
            else None
        )
        return cls(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            blobs=LocalBlobStore(settings.resolved_blob_dir),
            queue=queue,
        )

    async def close(self) -> None:
        if self.queue is not None:
            await self.queue.aclose()
        await self.engine.dispose()
