"""Print job rows (the source of truth for preparation work) and the slice cache."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlmodel import Field, SQLModel

from parts_catalog.sqltypes import StrEnumType, UTCDateTime, utcnow
from slicer_adapters.models import BuildVolume, PrintProfile

SlicerChoice = Literal["auto", "prusaslicer", "curaengine", "estimator"]


class PrinterSpec(BaseModel):
    """The printer a job is prepared for, as a snapshot: later edits to the printer do not change the job."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = PydanticField(min_length=1, max_length=120, pattern=r"^[^\x00-\x1f\x7f]+$")
    build_volume: BuildVolume
    profile: PrintProfile = PrintProfile()
    slicer: SlicerChoice = "auto"

    def preparation_digest(self, orientation_version: int) -> str:
        """Everything besides the model that decides the G-code: profile, bed and orientation algorithm."""
        parts = [self.profile.digest(), self.build_volume.model_dump_json(), str(orientation_version)]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()


class PrintJobStatus(StrEnum):
    WAITING_GEOMETRY = "waiting_geometry"  # the model is being checked, repaired, oriented or sliced
    READY = "ready"  # G-code and estimates stored; a factory may claim it
    FAILED = "failed"  # parked with a reason an operator can read
    CANCELLED = "cancelled"  # its order was cancelled or moved to another printer before printing


class PrintJob(SQLModel, table=True):
    __tablename__ = "print_job"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    revision_id: uuid.UUID = Field(foreign_key="part_revision.id", index=True)
    printer: dict[str, Any] = Field(sa_type=sa.JSON)  # a PrinterSpec
    status: PrintJobStatus = Field(
        default=PrintJobStatus.WAITING_GEOMETRY, sa_type=StrEnumType(PrintJobStatus), index=True
    )
    attempts: int = 0
    slice_artifact_id: uuid.UUID | None = Field(default=None, foreign_key="slice_artifact.id")
    orientation: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    failure_code: str | None = Field(default=None, max_length=64)
    failure_message: str | None = Field(default=None, max_length=4000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    @property
    def printer_spec(self) -> PrinterSpec:
        return PrinterSpec.model_validate(self.printer)


class SliceArtifact(SQLModel, table=True):
    """A slicing result, cached by model, preparation settings and slicer: a repeat order skips slicing."""

    __tablename__ = "slice_artifact"
    __table_args__ = (
        sa.UniqueConstraint(
            "model_sha256", "preparation_digest", "slicer", "slicer_version", name="uq_slice_artifact_key"
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    model_sha256: str = Field(max_length=64)
    preparation_digest: str = Field(max_length=64)
    slicer: str = Field(max_length=32)
    slicer_version: str = Field(max_length=64)
    gcode_sha256: str = Field(max_length=64, index=True)
    gcode_bytes: int = Field(sa_type=sa.BigInteger)
    print_seconds: float
    filament_mm3: float
    filament_g: float
    layer_count: int
    warnings: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    orientation: dict[str, Any] = Field(sa_type=sa.JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
