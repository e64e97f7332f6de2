"""Print job and slice cache queries. Nothing here commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from parts_catalog.models import PartRevision, RevisionStatus
from services.printing.models import PrintJob, PrintJobStatus, SliceArtifact


class PrintingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def job(self, job_id: uuid.UUID, *, for_update: bool = False) -> PrintJob | None:
        query = select(PrintJob).where(PrintJob.id == job_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def artifact(self, artifact_id: uuid.UUID) -> SliceArtifact | None:
        return await self.session.get(SliceArtifact, artifact_id)

    async def cached_artifact(
        self, *, model_sha256: str, preparation_digest: str, slicer: str, slicer_version: str
    ) -> SliceArtifact | None:
        query = select(SliceArtifact).where(
            SliceArtifact.model_sha256 == model_sha256,
            SliceArtifact.preparation_digest == preparation_digest,
            SliceArtifact.slicer == slicer,
            SliceArtifact.slicer_version == slicer_version,
        )
        return (await self.session.exec(query)).first()

    async def print_seconds(self, model_sha256: str, preparation_digests: Sequence[str]) -> dict[str, float]:
        """Print time of a model per preparation digest, from the slice cache (the newest slicing wins)."""
        query = (
            select(SliceArtifact.preparation_digest, SliceArtifact.print_seconds)
            .where(
                SliceArtifact.model_sha256 == model_sha256,
                col(SliceArtifact.preparation_digest).in_(list(preparation_digests)),
            )
            .order_by(col(SliceArtifact.created_at))
        )
        return dict((await self.session.exec(query)).all())

    async def jobs_waiting_for(self, revision_id: uuid.UUID) -> Sequence[uuid.UUID]:
        query = select(PrintJob.id).where(
            PrintJob.revision_id == revision_id, PrintJob.status == PrintJobStatus.WAITING_GEOMETRY
        )
        return (await self.session.exec(query)).all()

    async def jobs_awaiting_preparation(self, *, updated_before: datetime, limit: int) -> Sequence[uuid.UUID]:
        """Waiting jobs whose revision is decided: their preparation can run (or fail) now."""
        query = (
            select(PrintJob.id)
            .join(PartRevision, col(PartRevision.id) == col(PrintJob.revision_id))
            .where(
                PrintJob.status == PrintJobStatus.WAITING_GEOMETRY,
                col(PrintJob.updated_at) < updated_before,
                col(PartRevision.status).in_([RevisionStatus.READY, RevisionStatus.REJECTED]),
            )
            .order_by(col(PrintJob.updated_at))
            .limit(limit)
        )
        return (await self.session.exec(query)).all()

    async def referenced_blobs(self, sha256s: Sequence[str]) -> set[str]:
        query = select(SliceArtifact.gcode_sha256).where(col(SliceArtifact.gcode_sha256).in_(list(sha256s)))
        return set((await self.session.exec(query)).all())
