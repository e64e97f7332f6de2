"""The catalog's use cases. Methods flush, never commit: the caller (request or job) owns the transaction.

Every read and write takes ``visible_to``: the organization whose parts the caller may see, or None for an
operator who sees all. A part of another organization is reported as not found, never as forbidden, so a
caller cannot learn that it exists.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from parts_catalog.errors import (
    InvalidCursor,
    NotPrintable,
    PartNotFound,
    PartNumberTaken,
    RevisionNotFound,
    RevisionNotReady,
)
from parts_catalog.formats import ArchiveLimits, detect_model_format
from parts_catalog.models import Part, PartRevision, RevisionStatus
from parts_catalog.reports import REPORT_VERSION
from parts_catalog.repository import CatalogRepository, PartFilter
from parts_catalog.schemas import PartPatch, PartSpec
from parts_catalog.sqltypes import utcnow
from parts_catalog.storage import BlobStore


@dataclass(frozen=True, slots=True)
class IncomingModel:
    """A model file fully received into local staging, hashed while it streamed in."""

    path: Path
    size: int
    sha256: str
    filename: str
    note: str = ""
    declared_unit: str | None = None  # a parts_catalog.geometry.Unit value


@dataclass(frozen=True, slots=True)
class PartRecord:
    part: Part
    equipment_models: list[str]
    latest_revision: PartRevision | None


@dataclass(frozen=True, slots=True)
class PartPage:
    items: list[PartRecord]
    next_cursor: str | None


def _unique_casefold(values: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    kept = []
    for value in values:
        if value.casefold() not in seen:
            seen.add(value.casefold())
            kept.append(value)
    return kept


def _failed_report(revision: PartRevision, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "version": REPORT_VERSION,
        "format": revision.format,
        "verdict": "rejected",
        "reasons": [reason],
        "message": message or "the geometry check could not complete",
        "attempts": revision.check_attempts,
    }


def _encode_cursor(part: Part) -> str:
    raw = json.dumps([part.part_number, str(part.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        number, part_id = json.loads(raw)
        if not isinstance(number, str):
            raise TypeError(number)
        return number, uuid.UUID(part_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidCursor("cursor is not one this API issued") from exc


class CatalogService:
    def __init__(self, session: AsyncSession, blobs: BlobStore, *, archive_limits: ArchiveLimits) -> None:
        self.session = session
        self.repo = CatalogRepository(session)
        self.blobs = blobs
        self.archive_limits = archive_limits

    async def create_part(self, *, organization_id: uuid.UUID, spec: PartSpec) -> PartRecord:
        if await self.repo.part_number_taken(organization_id, spec.part_number):
            raise PartNumberTaken(
                f"part number {spec.part_number!r} already exists", {"part_number": spec.part_number}
            )
        part = Part(
            organization_id=organization_id,
            part_number=spec.part_number,
            name=spec.name,
            description=spec.description,
            process=spec.process,
            materials=_unique_casefold(spec.materials),
        )
        self.session.add(part)
        equipment = _unique_casefold(spec.equipment_models)
        try:
            await self.session.flush()
            await self.repo.replace_equipment(part.id, equipment)
            await self.session.flush()
        except IntegrityError as exc:  # lost a race with a concurrent create of the same number
            raise PartNumberTaken(
                f"part number {spec.part_number!r} already exists", {"part_number": spec.part_number}
            ) from exc
        return PartRecord(part=part, equipment_models=sorted(equipment), latest_revision=None)

    async def update_part(
        self, part_id: uuid.UUID, patch: PartPatch, *, visible_to: uuid.UUID | None
    ) -> PartRecord:
        part = await self._part(part_id, visible_to=visible_to)
        changes = patch.model_dump(exclude_unset=True, exclude={"equipment_models"})
        for field, value in changes.items():
            if value is not None:
                setattr(part, field, _unique_casefold(value) if field == "materials" else value)
        if patch.equipment_models is not None:
            await self.repo.replace_equipment(part.id, _unique_casefold(patch.equipment_models))
        part.updated_at = utcnow()
        await self.session.flush()
        return (await self._records([part]))[0]

    async def get_part(self, part_id: uuid.UUID, *, visible_to: uuid.UUID | None) -> PartRecord:
        return (await self._records([await self._part(part_id, visible_to=visible_to)]))[0]

    async def search_parts(
        self, criteria: PartFilter, *, visible_to: uuid.UUID | None, limit: int, cursor: str | None = None
    ) -> PartPage:
        after = _decode_cursor(cursor) if cursor else None
        # One extra row tells whether another page exists without a count query.
        parts = list(
            await self.repo.search_parts(criteria, visible_to=visible_to, after=after, limit=limit + 1)
        )
        next_cursor = _encode_cursor(parts[limit - 1]) if len(parts) > limit else None
        return PartPage(items=await self._records(parts[:limit]), next_cursor=next_cursor)

    async def add_revision(
        self,
        part_id: uuid.UUID,
        model: IncomingModel,
        *,
        visible_to: uuid.UUID | None,
        created_by: str | None,
    ) -> PartRevision:
        """Store an uploaded model as the part's next revision (status ``uploaded``).

        The file is sniffed from its content (3MF archives are checked against the archive limits while
        they are read) before anything is written. Raises PartNotFound or a
        ``parts_catalog.formats.ModelFileError``.
        """
        await self._part(part_id, visible_to=visible_to)
        detected = await asyncio.to_thread(
            detect_model_format, model.path, archive_limits=self.archive_limits
        )
        # Stored before the row exists: a failure after this leaves an unreferenced blob, which the orphan
        # sweep removes; the reverse order could leave a row pointing at nothing.
        await self.blobs.put_file(model.path, sha256=model.sha256)
        await self._part(part_id, visible_to=visible_to, for_update=True)
        revision = PartRevision(
            part_id=part_id,
            number=await self.repo.next_revision_number(part_id),
            blob_sha256=model.sha256,
            size_bytes=model.size,
            format=detected.format,
            format_warnings=list(detected.warnings),
            filename=model.filename,
            note=model.note,
            declared_unit=model.declared_unit,
            created_by=created_by,
        )
        self.session.add(revision)
        await self.session.flush()
        return revision

    async def list_revisions(
        self, part_id: uuid.UUID, *, visible_to: uuid.UUID | None
    ) -> Sequence[PartRevision]:
        await self._part(part_id, visible_to=visible_to)
        return await self.repo.revisions_of(part_id)

    async def get_revision(
        self, part_id: uuid.UUID, revision_id: uuid.UUID, *, visible_to: uuid.UUID | None
    ) -> PartRevision:
        await self._part(part_id, visible_to=visible_to)
        revision = await self.repo.get_revision(part_id, revision_id)
        if revision is None:
            raise RevisionNotFound("no such revision", {"revision_id": str(revision_id)})
        return revision

    async def begin_check(self, revision_id: uuid.UUID, *, max_attempts: int) -> PartRevision | None:
        """Claim a revision for its geometry check: ``checking``, one more attempt counted.

        Returns None when there is nothing to do (already decided, or unknown). A revision whose check
        has already been attempted ``max_attempts`` times is parked as rejected (``check_failed``) instead
        of being tried forever.
        """
        revision = await self.repo.revision_for_update(revision_id)
        if revision is None or revision.status in (RevisionStatus.READY, RevisionStatus.REJECTED):
            return None
        if revision.check_attempts >= max_attempts:
            self._decide(
                revision, RevisionStatus.REJECTED, _failed_report(revision, "check_failed_repeatedly")
            )
            await self.session.flush()
            return None
        revision.status = RevisionStatus.CHECKING
        revision.status_changed_at = utcnow()
        revision.check_attempts += 1
        await self.session.flush()
        return revision

    async def finish_check(
        self, revision_id: uuid.UUID, *, report: dict[str, Any], printable: bool, repaired_sha256: str | None
    ) -> PartRevision | None:
        """Store the check's report and decide the revision: ``ready`` when printable, else ``rejected``.

        Idempotent: a revision decided already is left as it is (None is returned).
        """
        revision = await self.repo.revision_for_update(revision_id)
        if revision is None or revision.status in (RevisionStatus.READY, RevisionStatus.REJECTED):
            return None
        revision.repaired_blob_sha256 = repaired_sha256
        self._decide(revision, RevisionStatus.READY if printable else RevisionStatus.REJECTED, report)
        await self.session.flush()
        return revision

    async def park_check(self, revision_id: uuid.UUID, *, reason: str, message: str) -> PartRevision | None:
        """Reject a revision whose check could not complete (timeouts, crashes), keeping the reason."""
        revision = await self.repo.revision_for_update(revision_id)
        if revision is None or revision.status in (RevisionStatus.READY, RevisionStatus.REJECTED):
            return None
        self._decide(revision, RevisionStatus.REJECTED, _failed_report(revision, reason, message))
        await self.session.flush()
        return revision

    async def revisions_awaiting_check(
        self, *, changed_before: datetime, limit: int = 500
    ) -> Sequence[uuid.UUID]:
        return await self.repo.revisions_awaiting_check(changed_before=changed_before, limit=limit)

    async def printable_revision(
        self,
        organization_id: uuid.UUID,
        *,
        part_number: str | None = None,
        revision_id: uuid.UUID | None = None,
    ) -> tuple[Part, PartRevision]:
        """The revision an order prints: the one named, or the part's newest that passed the geometry check.

        Raises:
            PartNotFound, RevisionNotFound: unknown, or another organization's.
            RevisionNotReady: the named revision (or the part's only ones) are still being checked.
            NotPrintable: the named revision, or every revision of the part, was rejected.
        """
        if revision_id is not None:
            revision = await self.repo.revision(revision_id)
            part = (
                await self.repo.get_part(revision.part_id, visible_to=organization_id) if revision else None
            )
            if revision is None or part is None:
                raise RevisionNotFound("no such revision", {"revision_id": str(revision_id)})
        else:
            assert part_number is not None
            part = await self.repo.part_by_number(organization_id, part_number)
            if part is None:
                raise PartNotFound("no such part", {"part_number": part_number})
            revision = await self.repo.newest_revision(part.id, RevisionStatus.READY)
            revision = revision or await self.repo.newest_revision(part.id)
            if revision is None:
                raise NotPrintable("the part has no model yet", {"part_number": part_number})
        if revision.status is RevisionStatus.REJECTED:
            raise NotPrintable(
                "the model was rejected by the geometry check",
                {"revision_id": str(revision.id), "reasons": (revision.geometry_report or {}).get("reasons")},
            )
        if revision.status is not RevisionStatus.READY:
            raise RevisionNotReady(
                "the model is still being checked; order again in a minute",
                {"revision_id": str(revision.id), "status": revision.status.value},
            )
        return part, revision

    async def revision(self, revision_id: uuid.UUID) -> PartRevision:
        """A revision by id, whoever owns it (workers; never an API caller)."""
        revision = await self.repo.revision(revision_id)
        if revision is None:
            raise RevisionNotFound("no such revision", {"revision_id": str(revision_id)})
        return revision

    @staticmethod
    def _decide(revision: PartRevision, status: RevisionStatus, report: dict[str, Any]) -> None:
        revision.status = status
        revision.status_changed_at = utcnow()
        revision.geometry_report = report

    async def read_model(
        self, part_id: uuid.UUID, revision_id: uuid.UUID, *, visible_to: uuid.UUID | None
    ) -> tuple[PartRevision, AsyncIterator[bytes]]:
        revision = await self.get_revision(part_id, revision_id, visible_to=visible_to)
        return revision, self.blobs.read(revision.blob_sha256)

    async def _part(
        self, part_id: uuid.UUID, *, visible_to: uuid.UUID | None, for_update: bool = False
    ) -> Part:
        part = await self.repo.get_part(part_id, visible_to=visible_to, for_update=for_update)
        if part is None:
            raise PartNotFound("no such part", {"part_id": str(part_id)})
        return part

    async def _records(self, parts: Sequence[Part]) -> list[PartRecord]:
        ids = [p.id for p in parts]
        equipment = await self.repo.equipment_of(ids)
        latest = await self.repo.latest_revisions(ids)
        return [
            PartRecord(part=p, equipment_models=equipment.get(p.id, []), latest_revision=latest.get(p.id))
            for p in parts
        ]
