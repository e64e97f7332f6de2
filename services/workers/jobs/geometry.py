"""Geometry jobs: check (and repair) an uploaded revision; prepare (orient, slice) a print job.

Both take an id, are idempotent (the row's state says whether there is anything left to do) and re-runnable.
A retryable failure is retried with backoff up to the configured attempts, then parked with its reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from arq import Retry

from parts_catalog.pipeline import check_and_repair, orient_for_printing
from parts_catalog.reports import ORIENTATION_VERSION
from parts_catalog.service import CatalogService
from parts_catalog.sqltypes import utcnow
from services.db import transaction
from services.factories.service import enqueue_site_reroute
from services.fulfilment.unit_of_work import job_step
from services.orders.repository import OrderRepository
from services.printing.models import SliceArtifact
from services.printing.service import PreparationTask, PrintingService
from services.queue import backoff_seconds
from services.workers.context import WorkerResources, resources
from services.workers.mesh_pool import MeshWorkError
from slicer_adapters.errors import SlicerError
from slicer_adapters.models import SliceJob

log = logging.getLogger(__name__)


def _services(res: WorkerResources, session: Any) -> tuple[CatalogService, PrintingService]:
    catalog = CatalogService(session, res.blobs, archive_limits=res.settings.archive_limits)
    return catalog, PrintingService(session, catalog)


def _backoff(attempt: int) -> float:
    # 5 s, 20 s, 45 s, ...: transient causes (a busy machine, a killed pool) usually clear within a minute.
    return backoff_seconds(attempt, base_s=5.0)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _workspace(res: WorkerResources) -> tempfile.TemporaryDirectory[str]:
    # Inside the blob store's staging area: finished files move into the store with a rename, and the
    # staging sweep removes workspaces of jobs that died.
    res.settings.staging_dir.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(dir=res.settings.staging_dir, prefix="job-")


async def check_revision(ctx: dict[str, Any], revision_id: str) -> str:
    res = resources(ctx)
    settings = res.settings
    rid = uuid.UUID(revision_id)
    async with transaction(res.sessions) as session:
        revision = await _services(res, session)[0].begin_check(rid, max_attempts=settings.max_job_attempts)
        if revision is None:
            return "nothing to do"
        source, fmt, unit = revision.blob_sha256, revision.format.value, revision.declared_unit
        attempt = revision.check_attempts

    with _workspace(res) as workdir:
        repaired_path = Path(workdir) / "repaired.stl"
        try:
            async with res.blobs.local_file(source) as path:
                outcome = await res.mesh_pool.run(
                    check_and_repair,
                    path,
                    fmt,
                    max_faces=settings.max_model_faces,
                    declared_unit=unit,
                    repaired_out=repaired_path,
                    timeout_s=settings.check_timeout_s,
                )
        except MeshWorkError as exc:
            if attempt < settings.max_job_attempts:
                raise Retry(defer=_backoff(attempt)) from exc
            async with transaction(res.sessions, res.queue) as session:
                catalog, printing = _services(res, session)
                await catalog.park_check(rid, reason=exc.code, message=str(exc))
                await printing.revision_decided(rid)
            return f"parked: {exc.code}"
        repaired_sha = None
        if outcome.repaired:
            repaired_sha = await asyncio.to_thread(_sha256_of, repaired_path)
            await res.blobs.put_file(repaired_path, sha256=repaired_sha)

    async with transaction(res.sessions, res.queue) as session:
        catalog, printing = _services(res, session)
        decided = await catalog.finish_check(
            rid, report=outcome.report, printable=outcome.printable, repaired_sha256=repaired_sha
        )
        if decided is not None:
            await printing.revision_decided(rid)
    return "ready" if outcome.printable else "rejected"


def _job_step(res: WorkerResources, job_id: uuid.UUID) -> AbstractAsyncContextManager[PrintingService]:
    return job_step(
        res.sessions,
        res.queue,
        res.blobs,
        job_id,
        archive_limits=res.settings.archive_limits,
        snapshots=res.snapshots,
    )


async def prepare_print(ctx: dict[str, Any], job_id: str) -> str:
    res = resources(ctx)
    settings = res.settings
    jid = uuid.UUID(job_id)
    async with _job_step(res, jid) as printing:
        task = await printing.begin_preparation(jid, max_attempts=settings.max_job_attempts)
    if task is None:
        return "nothing to do"
    try:
        prepared = await _prepare(res, task)
    except (SlicerError, MeshWorkError) as exc:
        if exc.retryable and task.attempt < settings.max_job_attempts:
            raise Retry(defer=_backoff(task.attempt)) from exc
        log.warning("print job %s failed: %s %s", jid, exc.code, exc)
        async with _job_step(res, jid) as printing:
            await printing.fail_preparation(jid, code=exc.code, message=_describe(exc))
        return f"failed: {exc.code}"
    if isinstance(prepared, str):
        return prepared
    async with _job_step(res, jid) as printing:
        artifact = await printing.store_artifact(prepared.artifact) if prepared.fresh else prepared.artifact
        await printing.finish_preparation(jid, artifact)
    return "ready"


@dataclass(frozen=True, slots=True)
class _Prepared:
    artifact: SliceArtifact
    fresh: bool  # sliced now, not stored yet; else it came from the slice cache


def _describe(exc: Exception) -> str:
    output = getattr(exc, "output", "")
    return f"{exc}\n{output}".strip()


async def _prepare(res: WorkerResources, task: PreparationTask) -> _Prepared | str:
    """Orient and slice, or take the cached result.

    Returns the artifact, or a message when the job failed (and was marked so).
    """
    settings, printer = res.settings, task.printer
    resolved = await res.slicers.resolve(printer.slicer)
    digest = printer.preparation_digest(ORIENTATION_VERSION)
    async with transaction(res.sessions) as session:
        cached = await _services(res, session)[1].cached_artifact(
            task, digest=digest, slicer=resolved.slicer.name, version=resolved.version
        )
    if cached is not None:
        return _Prepared(cached, fresh=False)

    bed = printer.build_volume
    with _workspace(res) as workdir:
        oriented = Path(workdir) / "oriented.stl"
        async with res.blobs.local_file(task.model.sha256) as path:
            orientation = await res.mesh_pool.run(
                orient_for_printing,
                path,
                task.model.format,
                max_faces=settings.max_model_faces,
                declared_unit=task.model.declared_unit,
                build_volume=(bed.x_mm, bed.y_mm, bed.z_mm),
                out_stl=oriented,
                timeout_s=settings.check_timeout_s,
            )
        if not orientation["fits"]:
            # Said before any slicer runs: PrusaSlicer would abort, CuraEngine would print off the bed.
            async with _job_step(res, task.job_id) as printing:
                await printing.fail_preparation(
                    task.job_id,
                    code=orientation.get("reason") or "does_not_fit",
                    message=f"does not fit {printer.name} ({bed.x_mm} x {bed.y_mm} x {bed.z_mm} mm) "
                    f"in any orientation; smallest size {orientation.get('size_mm')}",
                )
            return "failed: does not fit"
        slice_dir = Path(workdir) / "slice"
        slice_dir.mkdir()
        result = await resolved.slicer.slice(
            SliceJob(
                model_path=oriented,
                profile=printer.profile,
                build_volume=bed,
                workdir=slice_dir,
                timeout_s=settings.slice_timeout_s,
                memory_limit_bytes=settings.slicer_memory_limit_bytes,
            )
        )
        gcode_sha = await asyncio.to_thread(_sha256_of, result.gcode_path)
        stored = await res.blobs.put_file(result.gcode_path, sha256=gcode_sha)

    artifact = SliceArtifact(
        model_sha256=task.model.sha256,
        preparation_digest=digest,
        slicer=result.slicer,
        slicer_version=result.slicer_version,
        gcode_sha256=gcode_sha,
        gcode_bytes=stored.size,
        print_seconds=result.print_seconds,
        filament_mm3=result.filament_mm3,
        filament_g=result.filament_g,
        layer_count=result.layer_count,
        warnings=list(result.warnings),
        orientation=orientation,
    )
    return _Prepared(artifact, fresh=True)


async def reconcile(ctx: dict[str, Any]) -> dict[str, int]:
    """Re-enqueue work the database says is pending. Safe to run anywhere, any time."""
    res = resources(ctx)
    cutoff = utcnow() - timedelta(seconds=res.settings.reconcile_after_seconds)
    async with transaction(res.sessions, res.queue) as session:
        counts = await _services(res, session)[1].reconcile(changed_before=cutoff)
        # Offline sites still holding unstarted orders: their re-route message was lost.
        stranded = await OrderRepository(session).sites_with_stranded_orders()
        for site_id in stranded:
            enqueue_site_reroute(session, site_id)
    return {**counts, "offline_sites": len(stranded)}
