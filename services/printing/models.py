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
from services.validation import SINGLE_LINE_PATTERN
from slicer_adapters.models import BuildVolume, PrintProfile

SlicerChoice = Literal["auto", "prusaslicer", "curaengine", "estimator"]


class PrinterSpec(BaseModel):
    """The printer a job is prepared for, as a snapshot: later edits to the printer do not change the job."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = PydanticField(min_length=1, max_length=120, pattern=SINGLE_LINE_PATTERN)
    build_volume: BuildVolume
    profile: PrintProfile = PrintProfile()
    slicer: SlicerChoice = "auto"

    def preparation_digest(self, orientation_version: int) -> str:
        """Everything besides the model that decides the G-code: profile, bed and orientation algorithm."""
        parts = [self.profile.digest(), self.build_volume.model_dump_json(), str(orientation_version)]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()


class PrintJobStatus(StrEnum):
    WAITING_GEOMETRY = "waiting_geometry"  # the model is being checked, repaired, oriented or sliced
    READY = "ready"  # G-code and estimates stored; its site's agent may claim it
    CLAIMED = "claimed"  # an agent holds the lease; it is downloading or starting the print
    PRINTING = "printing"  # the agent reported the printer printing it
    DONE = "done"  # printed and passed the site's checks
    FAILED = "failed"  # parked with a reason an operator can read
    CANCELLED = "cancelled"  # its order was cancelled or moved to another printer before printing


# Statuses in which an agent holds a lease on the job.
LEASED = frozenset({PrintJobStatus.CLAIMED, PrintJobStatus.PRINTING})


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
    # Where it prints. Set for the jobs orders create; an operator's test job has no site and is never
    # offered to a factory.
    site_id: uuid.UUID | None = Field(default=None, foreign_key="site.id", index=True)
    printer_id: uuid.UUID | None = Field(default=None, foreign_key="printer.id", ondelete="SET NULL")
    material: str | None = Field(default=None, max_length=40)
    # The lease: ``fence`` grows with every claim; a request must carry the current token to count.
    fence: int = Field(default=0, sa_type=sa.BigInteger)
    lease_token: str | None = Field(default=None, max_length=100)
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    progress: float | None = None
    printer_state: str | None = Field(default=None, max_length=32)
    failures_here: int = 0  # failed prints at its site; past the limit the order is re-routed
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completion: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)  # what the site measured
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    @property
    def printer_spec(self) -> PrinterSpec:
        return PrinterSpec.model_validate(self.printer)


class LeaseOutcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"  # the order was cancelled or re-routed while the lease was held


class PrintJobLease(SQLModel, table=True):
    """Every claim of a job, kept: who held it, when, and how it ended (audit, and the proof in the
    reliability tests that a job never had two live leases)."""

    __tablename__ = "print_job_lease"
    __table_args__ = (sa.UniqueConstraint("job_id", "fence", name="uq_print_job_lease_fence"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: uuid.UUID = Field(foreign_key="print_job.id", index=True, ondelete="CASCADE")
    fence: int = Field(sa_type=sa.BigInteger)
    site_id: uuid.UUID = Field(foreign_key="site.id", ondelete="CASCADE")
    claimed_by: str = Field(max_length=24)  # the API key id
    claimed_at: datetime = Field(sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    outcome: LeaseOutcome | None = Field(default=None, sa_type=StrEnumType(LeaseOutcome))
    reason: str | None = Field(default=None, max_length=64)


class SitePresence(SQLModel, table=True):
    """When a site's agents last called the factory API. Kept apart from the site row, which routing locks:
    agents polling every few seconds must not queue behind order placement."""

    __tablename__ = "site_presence"

    site_id: uuid.UUID = Field(foreign_key="site.id", primary_key=True, ondelete="CASCADE")
    last_seen_at: datetime = Field(sa_type=UTCDateTime)
    # Set when silence took the site offline; its next call brings it back online.
    silenced_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


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
