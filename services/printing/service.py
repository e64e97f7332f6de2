"""Preparing parts for printers: accept uploads for checking, create print jobs, record their outcome.

Work runs in arq jobs (``services.workers.jobs.geometry``); this service owns the rows those jobs move.
Every method flushes, never commits, and enqueues follow-up work only after the caller's commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from parts_catalog.models import PartRevision, RevisionStatus
from parts_catalog.reports import REPAIRED_FORMAT, REPAIRED_UNIT
from parts_catalog.service import CatalogService, IncomingModel
from parts_catalog.sqltypes import utcnow
from services.errors import Conflict, NotFound
from services.printing import states
from services.printing.models import PrinterSpec, PrintJob, PrintJobStatus, SliceArtifact
from services.printing.repository import PrintingRepository
from services.queue import enqueue_after_commit

CHECK_REVISION = "check_revision"
PREPARE_PRINT = "prepare_print"


def check_job_id(revision_id: uuid.UUID) -> str:
    return f"{CHECK_REVISION}:{revision_id}"


def prepare_job_id(job_id: uuid.UUID) -> str:
    return f"{PREPARE_PRINT}:{job_id}"


@dataclass(frozen=True, slots=True)
class PrintModel:
    """The file a job prints from: the repaired model when there is one, else the upload."""

    sha256: str
    format: str
    declared_unit: str | None

    @classmethod
    def of(cls, revision: PartRevision) -> PrintModel:
        if revision.repaired_blob_sha256:
            return cls(revision.repaired_blob_sha256, REPAIRED_FORMAT.value, REPAIRED_UNIT.value)
        return cls(revision.blob_sha256, revision.format.value, revision.declared_unit)


@dataclass(frozen=True, slots=True)
class PreparationTask:
    job_id: uuid.UUID
    printer: PrinterSpec
    model: PrintModel
    attempt: int


@dataclass(frozen=True, slots=True)
class JobView:
    job: PrintJob
    artifact: SliceArtifact | None


class PrintingService:
    def __init__(self, session: AsyncSession, catalog: CatalogService) -> None:
        self.session = session
        self.catalog = catalog
        self.repo = PrintingRepository(session)

    async def accept_revision(
        self,
        part_id: uuid.UUID,
        model: IncomingModel,
        *,
        visible_to: uuid.UUID | None,
        created_by: str | None,
    ) -> PartRevision:
        """Store an upload as the part's next revision and queue its geometry check."""
        revision = await self.catalog.add_revision(
            part_id, model, visible_to=visible_to, created_by=created_by
        )
        enqueue_after_commit(self.session, CHECK_REVISION, str(revision.id), job_id=check_job_id(revision.id))
        return revision

    async def create_job(
        self,
        revision_id: uuid.UUID,
        printer: PrinterSpec,
        *,
        site_id: uuid.UUID | None = None,
        printer_id: uuid.UUID | None = None,
        material: str | None = None,
    ) -> PrintJob:
        """A print job for a revision on a printer; it is prepared as soon as the revision is checked.

        Jobs with a site (an order's) are offered to that site's agents once ready; without one (an
        operator's trial preparation) they are only prepared.
        """
        await self.catalog.revision(revision_id)  # raises RevisionNotFound (404)
        job = PrintJob(
            revision_id=revision_id,
            printer=printer.model_dump(mode="json"),
            site_id=site_id,
            printer_id=printer_id,
            material=material,
        )
        self.session.add(job)
        await self.session.flush()
        enqueue_after_commit(self.session, PREPARE_PRINT, str(job.id), job_id=prepare_job_id(job.id))
        return job

    async def job_view(self, job_id: uuid.UUID) -> JobView:
        job = await self.repo.job(job_id)
        if job is None:
            raise NotFound("no such print job", code="print_job_not_found")
        artifact = await self.repo.artifact(job.slice_artifact_id) if job.slice_artifact_id else None
        return JobView(job=job, artifact=artifact)

    async def ready_artifact(self, job_id: uuid.UUID) -> SliceArtifact:
        """A ready job's slicing result (its G-code's sha256 and size). Raises NotFound, or Conflict until
        it is ready."""
        view = await self.job_view(job_id)
        if view.artifact is None:
            raise Conflict(f"print job is {view.job.status}, not ready", code="print_job_not_ready")
        return view.artifact

    async def cancel_job(self, job_id: uuid.UUID) -> None:
        """Withdraw a job that has not started printing; its preparation, if running, is then discarded."""
        job = await self.repo.job(job_id, for_update=True)
        if job is not None and job.status in (PrintJobStatus.WAITING_GEOMETRY, PrintJobStatus.READY):
            states.move(job, PrintJobStatus.CANCELLED, at=utcnow())
            await self.session.flush()

    async def revision_decided(self, revision_id: uuid.UUID) -> None:
        """Wake the jobs that waited for this revision's check."""
        for job_id in await self.repo.jobs_waiting_for(revision_id):
            enqueue_after_commit(self.session, PREPARE_PRINT, str(job_id), job_id=prepare_job_id(job_id))

    async def begin_preparation(self, job_id: uuid.UUID, *, max_attempts: int) -> PreparationTask | None:
        """Claim a job for preparation, or None when there is nothing to do yet (or any more).

        A job whose revision was rejected fails here; one whose revision is still being checked waits
        (the check wakes it). Attempts beyond ``max_attempts`` park the job as failed.
        """
        job = await self.repo.job(job_id, for_update=True)
        if job is None or job.status is not PrintJobStatus.WAITING_GEOMETRY:
            return None
        revision = await self.catalog.revision(job.revision_id)
        if revision.status is RevisionStatus.REJECTED:
            reasons = (revision.geometry_report or {}).get("reasons", [])
            self._fail(job, "revision_rejected", f"the model was rejected by the geometry check: {reasons}")
            await self.session.flush()
            return None
        if revision.status is not RevisionStatus.READY:
            return None
        if job.attempts >= max_attempts:
            self._fail(job, "preparation_failed_repeatedly", f"gave up after {job.attempts} attempts")
            await self.session.flush()
            return None
        job.attempts += 1
        job.updated_at = utcnow()
        await self.session.flush()
        return PreparationTask(
            job_id=job.id, printer=job.printer_spec, model=PrintModel.of(revision), attempt=job.attempts
        )

    async def cached_print_seconds(
        self, revision: PartRevision, preparation_digests: Sequence[str]
    ) -> dict[str, float]:
        """Print seconds of the revision's print model per preparation digest, where it was sliced before."""
        return await self.repo.print_seconds(PrintModel.of(revision).sha256, preparation_digests)

    async def cached_artifact(
        self, task: PreparationTask, *, digest: str, slicer: str, version: str
    ) -> SliceArtifact | None:
        return await self.repo.cached_artifact(
            model_sha256=task.model.sha256, preparation_digest=digest, slicer=slicer, slicer_version=version
        )

    async def store_artifact(self, artifact: SliceArtifact) -> SliceArtifact:
        """Add a slicing result to the cache; when a concurrent job stored the same key first, use that."""
        try:
            async with self.session.begin_nested():
                self.session.add(artifact)
        except IntegrityError:
            existing = await self.repo.cached_artifact(
                model_sha256=artifact.model_sha256,
                preparation_digest=artifact.preparation_digest,
                slicer=artifact.slicer,
                slicer_version=artifact.slicer_version,
            )
            assert existing is not None
            return existing
        return artifact

    async def finish_preparation(self, job_id: uuid.UUID, artifact: SliceArtifact) -> PrintJob | None:
        job = await self.repo.job(job_id, for_update=True)
        if job is None or job.status is not PrintJobStatus.WAITING_GEOMETRY:
            return None
        job.slice_artifact_id = artifact.id
        job.orientation = artifact.orientation
        states.move(job, PrintJobStatus.READY, at=utcnow())
        await self.session.flush()
        return job

    async def fail_preparation(self, job_id: uuid.UUID, *, code: str, message: str) -> PrintJob | None:
        job = await self.repo.job(job_id, for_update=True)
        if job is None or job.status is not PrintJobStatus.WAITING_GEOMETRY:
            return None
        self._fail(job, code, message)
        await self.session.flush()
        return job

    async def reconcile(self, *, changed_before: datetime) -> dict[str, int]:
        """Enqueue again the work rows say is pending: a lost Redis message delays work, never loses it."""
        revisions: Sequence[uuid.UUID] = await self.catalog.revisions_awaiting_check(
            changed_before=changed_before
        )
        for revision_id in revisions:
            enqueue_after_commit(
                self.session, CHECK_REVISION, str(revision_id), job_id=check_job_id(revision_id)
            )
        jobs = await self.repo.jobs_awaiting_preparation(updated_before=changed_before, limit=500)
        for job_id in jobs:
            enqueue_after_commit(self.session, PREPARE_PRINT, str(job_id), job_id=prepare_job_id(job_id))
        return {"revisions": len(revisions), "print_jobs": len(jobs)}

    @staticmethod
    def _fail(job: PrintJob, code: str, message: str) -> None:
        states.move(job, PrintJobStatus.FAILED, at=utcnow())
        job.failure_code = code
        job.failure_message = message[:4000]
