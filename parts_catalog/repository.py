"""Catalog queries, named by intent. Callers own the transaction: nothing here commits."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from parts_catalog.models import Part, PartEquipment, PartRevision, RevisionStatus


def _like_escape(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class PartFilter:
    """Search criteria; every given criterion must match (AND)."""

    text: str | None = None  # every whitespace-separated word appears in number, name or description
    part_number: str | None = None  # prefix, case-insensitive
    equipment_model: str | None = None  # exact, case-insensitive
    organization_id: uuid.UUID | None = None


class CatalogRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_part(
        self, part_id: uuid.UUID, *, visible_to: uuid.UUID | None, for_update: bool = False
    ) -> Part | None:
        query = select(Part).where(Part.id == part_id)
        if visible_to is not None:
            query = query.where(Part.organization_id == visible_to)
        if for_update:
            # Serialises revision numbering per part on PostgreSQL; SQLite serialises all writes anyway.
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def part_by_number(self, organization_id: uuid.UUID, part_number: str) -> Part | None:
        query = select(Part).where(Part.organization_id == organization_id, Part.part_number == part_number)
        return (await self.session.exec(query)).first()

    async def part_number_taken(self, organization_id: uuid.UUID, part_number: str) -> bool:
        query = select(Part.id).where(
            Part.organization_id == organization_id, Part.part_number == part_number
        )
        return (await self.session.exec(query)).first() is not None

    async def search_parts(
        self,
        criteria: PartFilter,
        *,
        visible_to: uuid.UUID | None,
        after: tuple[str, uuid.UUID] | None,
        limit: int,
    ) -> Sequence[Part]:
        query = select(Part)
        if visible_to is not None:
            query = query.where(Part.organization_id == visible_to)
        if criteria.organization_id is not None:
            query = query.where(Part.organization_id == criteria.organization_id)
        if criteria.part_number:
            prefix = _like_escape(criteria.part_number.lower()) + "%"
            query = query.where(sa.func.lower(Part.part_number).like(prefix, escape="\\"))
        for word in (criteria.text or "").lower().split():
            pattern = f"%{_like_escape(word)}%"
            query = query.where(
                sa.or_(
                    sa.func.lower(Part.part_number).like(pattern, escape="\\"),
                    sa.func.lower(Part.name).like(pattern, escape="\\"),
                    sa.func.lower(Part.description).like(pattern, escape="\\"),
                )
            )
        if criteria.equipment_model:
            fits = select(PartEquipment.part_id).where(
                sa.func.lower(PartEquipment.equipment_model) == criteria.equipment_model.lower()
            )
            query = query.where(col(Part.id).in_(fits))
        if after is not None:
            number, part_id = after
            query = query.where(
                sa.or_(
                    col(Part.part_number) > number,
                    sa.and_(col(Part.part_number) == number, col(Part.id) > part_id),
                )
            )
        query = query.order_by(col(Part.part_number), col(Part.id)).limit(limit)
        return (await self.session.exec(query)).all()

    async def equipment_of(self, part_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
        query = (
            select(PartEquipment)
            .where(col(PartEquipment.part_id).in_(list(part_ids)))
            .order_by(col(PartEquipment.equipment_model))
        )
        found: dict[uuid.UUID, list[str]] = defaultdict(list)
        for row in (await self.session.exec(query)).all():
            found[row.part_id].append(row.equipment_model)
        return found

    async def replace_equipment(self, part_id: uuid.UUID, equipment_models: Iterable[str]) -> None:
        await self.session.exec(sa.delete(PartEquipment).where(col(PartEquipment.part_id) == part_id))
        self.session.add_all(PartEquipment(part_id=part_id, equipment_model=m) for m in equipment_models)

    async def latest_revisions(self, part_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, PartRevision]:
        newest = (
            select(PartRevision.part_id, sa.func.max(PartRevision.number).label("number"))
            .where(col(PartRevision.part_id).in_(list(part_ids)))
            .group_by(col(PartRevision.part_id))
            .subquery()
        )
        query = select(PartRevision).join(
            newest,
            sa.and_(
                col(PartRevision.part_id) == newest.c.part_id, col(PartRevision.number) == newest.c.number
            ),
        )
        return {rev.part_id: rev for rev in (await self.session.exec(query)).all()}

    async def newest_revision(
        self, part_id: uuid.UUID, status: RevisionStatus | None = None
    ) -> PartRevision | None:
        query = select(PartRevision).where(PartRevision.part_id == part_id)
        if status is not None:
            query = query.where(PartRevision.status == status)
        return (await self.session.exec(query.order_by(col(PartRevision.number).desc()).limit(1))).first()

    async def next_revision_number(self, part_id: uuid.UUID) -> int:
        query = select(sa.func.max(PartRevision.number)).where(PartRevision.part_id == part_id)
        current = (await self.session.exec(query)).first()
        return (current or 0) + 1

    async def revisions_of(self, part_id: uuid.UUID) -> Sequence[PartRevision]:
        query = select(PartRevision).where(PartRevision.part_id == part_id).order_by(col(PartRevision.number))
        return (await self.session.exec(query)).all()

    async def get_revision(self, part_id: uuid.UUID, revision_id: uuid.UUID) -> PartRevision | None:
        query = select(PartRevision).where(PartRevision.part_id == part_id, PartRevision.id == revision_id)
        return (await self.session.exec(query)).first()

    async def revision_for_update(self, revision_id: uuid.UUID) -> PartRevision | None:
        query = select(PartRevision).where(PartRevision.id == revision_id).with_for_update()
        return (await self.session.exec(query)).first()

    async def revision(self, revision_id: uuid.UUID) -> PartRevision | None:
        return await self.session.get(PartRevision, revision_id)

    async def revisions_awaiting_check(self, *, changed_before: datetime, limit: int) -> Sequence[uuid.UUID]:
        query = (
            select(PartRevision.id)
            .where(
                col(PartRevision.status).in_([RevisionStatus.UPLOADED, RevisionStatus.CHECKING]),
                col(PartRevision.status_changed_at) < changed_before,
            )
            .order_by(col(PartRevision.status_changed_at))
            .limit(limit)
        )
        return (await self.session.exec(query)).all()

    async def referenced_blobs(self, sha256s: Iterable[str]) -> set[str]:
        query = (
            select(PartRevision.blob_sha256)
            .where(col(PartRevision.blob_sha256).in_(list(sha256s)))
            .distinct()
        )
        return set((await self.session.exec(query)).all())
