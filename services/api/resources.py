"""Long-lived objects the API shares across requests, built once in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

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

    @classmethod
    def open(cls, settings: Settings) -> AppResources:
        engine = create_engine(settings.resolved_database_url)
        return cls(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            blobs=LocalBlobStore(settings.resolved_blob_dir),
        )

    async def close(self) -> None:
        await self.engine.dispose()
