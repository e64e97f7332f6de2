"""What every job gets: long-lived resources built once in the worker's ``on_startup``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis

from parts_catalog.storage import LocalBlobStore
from services.config import Settings
from services.db import SessionFactory, create_engine, session_factory
from services.routing.snapshot import SnapshotCache
from services.slicers import build_slicer_registry
from services.workers.mesh_pool import MeshPool
from slicer_adapters.registry import SlicerRegistry

_KEY = "spareflow"


@dataclass(frozen=True, slots=True)
class WorkerResources:
    settings: Settings
    sessions: SessionFactory
    blobs: LocalBlobStore
    queue: ArqRedis
    mesh_pool: MeshPool
    slicers: SlicerRegistry
    snapshots: SnapshotCache


async def on_startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    engine = create_engine(settings.resolved_database_url)
    ctx["engine"] = engine
    mesh_pool = MeshPool(settings.mesh_workers, settings.mesh_memory_limit_bytes)
    # Pay the mesh processes' start-up (imports) now rather than on the first upload.
    await mesh_pool.warm_up()
    ctx[_KEY] = WorkerResources(
        settings=settings,
        sessions=session_factory(engine),
        blobs=LocalBlobStore(settings.resolved_blob_dir),
        queue=ctx["redis"],
        mesh_pool=mesh_pool,
        slicers=build_slicer_registry(settings),
        snapshots=SnapshotCache(max_age_s=settings.routing_snapshot_max_age_s),
    )


async def on_shutdown(ctx: dict[str, Any]) -> None:
    if _KEY in ctx:
        ctx[_KEY].mesh_pool.close()
    if "engine" in ctx:
        await ctx["engine"].dispose()


def resources(ctx: dict[str, Any]) -> WorkerResources:
    found: WorkerResources = ctx[_KEY]
    return found
