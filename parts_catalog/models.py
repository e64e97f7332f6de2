"""Catalog tables: a Part owned by an organization, its immutable revisions and the equipment it fits."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from parts_catalog.formats import ModelFormat
from parts_catalog.sqltypes import StrEnumType, UTCDateTime, utcnow


class Process(StrEnum):
    """Additive manufacturing processes a part can require (ISO/ASTM 52900 families we route on)."""

    FDM = "fdm"
    SLA = "sla"
    SLS = "sls"
    MJF = "mjf"


class RevisionStatus(StrEnum):
    UPLOADED = "uploaded"
    CHECKING = "checking"
    READY = "ready"
    REJECTED = "rejected"


class Part(SQLModel, table=True):
    __tablename__ = "part"
    __table_args__ = (
        sa.UniqueConstraint("organization_id", "part_number", name="uq_part_org_number"),
        # Listings order by part number (keyset pagination).
        sa.Index("ix_part_number", "part_number"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # The owning tenant. The foreign key to the platform's organization table is declared by the
    # migrations: this library knows an owner id, not the platform's account model.
    organization_id: uuid.UUID = Field(index=True)
    part_number: str = Field(max_length=64)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=4000)
    process: Process = Field(sa_type=StrEnumType(Process))
    materials: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PartEquipment(SQLModel, table=True):
    """Equipment compatibility: one row per machine model a part fits."""

    __tablename__ = "part_equipment"
    # Search by equipment model compares lower-cased values.
    __table_args__ = (sa.Index("ix_part_equipment_model_lower", sa.text("lower(equipment_model)")),)

    part_id: uuid.UUID = Field(foreign_key="part.id", primary_key=True, ondelete="CASCADE")
    equipment_model: str = Field(primary_key=True, max_length=120)


class PartRevision(SQLModel, table=True):
    """One uploaded model of a part. Never edited after upload except by the geometry pipeline."""

    @property
    def print_blob_sha256(self) -> str:
        """The model file that printing uses: the repaired one when there is one."""
        return self.repaired_blob_sha256 or self.blob_sha256

    __tablename__ = "part_revision"
    __table_args__ = (sa.UniqueConstraint("part_id", "number", name="uq_part_revision_number"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    part_id: uuid.UUID = Field(foreign_key="part.id", index=True, ondelete="CASCADE")
    number: int
    blob_sha256: str = Field(max_length=64, index=True)
    size_bytes: int = Field(sa_type=sa.BigInteger)
    format: ModelFormat = Field(sa_type=StrEnumType(ModelFormat))
    format_warnings: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    filename: str = Field(max_length=255)
    note: str = Field(default="", max_length=1000)
    # The unit the uploader declared; None means "take the file's own (3MF) or assume millimetres".
    declared_unit: str | None = Field(default=None, max_length=16)
    status: RevisionStatus = Field(
        default=RevisionStatus.UPLOADED, sa_type=StrEnumType(RevisionStatus), index=True
    )
    status_changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    check_attempts: int = 0
    geometry_report: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    # The model to print when the check had to repair it; the uploaded original is never replaced.
    repaired_blob_sha256: str | None = Field(default=None, max_length=64)
    created_by: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
