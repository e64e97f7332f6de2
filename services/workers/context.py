"""What every job gets: long-lived resources built once in the worker's ``on_startup``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis

from parts_catalog.storage import LocalBlobStore
from services.config import Settings
from services.couriers.registry import LOCAL_PARTNER, Couriers
from services.db import SessionFactory, create_engine, session_factory
from services.observability.logs import enter_log_context
from services.routing.snapshot import SnapshotCache
from services.slicers import build_slicer_registry
from services.webhooks.inbound.partners import ensure_partner_secret
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
    couriers: Couriers


async def on_startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    engine = create_engine(settings.resolved_database_url)
    ctx["engine"] = engine
    mesh_pool = MeshPool(settings.mesh_workers, settings.mesh_memory_limit_bytes)
    # Pay the mesh processes' start-up (imports) now rather than on the first upload.
    await mesh_pool.warm_up()
    sessions = session_factory(engine)
    # The built-in courier signs its webhooks with the secret our endpoint checks them against.
    local_secret = await ensure_partner_secret(sessions, LOCAL_PARTNER, "Spareflow local courier")
    ctx[_KEY] = WorkerResources(
        settings=settings,
        sessions=sessions,
        blobs=LocalBlobStore(settings.resolved_blob_dir),
        queue=ctx["redis"],
        mesh_pool=mesh_pool,
        slicers=build_slicer_registry(settings),
        snapshots=SnapshotCache(max_age_s=settings.routing_snapshot_max_age_s),
        couriers=Couriers(settings, sessions, local_secret=local_secret),
    )


async def on_shutdown(ctx: dict[str, Any]) -> None:
    if _KEY in ctx:
        ctx[_KEY].mesh_pool.close()
        await ctx[_KEY].couriers.aclose()
    if "engine" in ctx:
        await ctx["engine"].dispose()


async def on_job_start(ctx: dict[str, Any]) -> None:
    # arq starts the job's own task after this hook, in this task's context: the job logs under these ids
    # plus any it binds (an order's id).
    enter_log_context(queue_job_id=ctx["job_id"], job_try=str(ctx["job_try"]))


def resources(ctx: dict[str, Any]) -> WorkerResources:
    found: WorkerResources = ctx[_KEY]
    return found
