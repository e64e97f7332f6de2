"""The factory API's wire format: what a microfactory's agent sends and receives under ``/factory``.

The agent (``services.factory_agent``) parses these same models, so server and client cannot drift apart.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# "<fence>.<secret>": the fence is a number that grows with every claim of the job (a fencing token); the
# secret makes a token impossible to guess, so a forged one is refused even with the right fence.
LeaseToken = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,18}\.[A-Za-z0-9_-]{16,64}$")]
ArtifactKind = Literal["gcode", "model"]


class PrinterState(StrEnum):
    """What the printer is doing, as the agent reads it off its print host."""

    PREPARING = "preparing"  # downloading, uploading to the print host
    HEATING = "heating"
    PRINTING = "printing"
    PAUSED = "paused"
    FINISHING = "finishing"  # print over; cooling, removal, QA
    IDLE = "idle"
    ERROR = "error"


class FailReason(StrEnum):
    PRINT_FAILED = "print_failed"  # the print host reported a failed print
    CANCELLED_ON_PRINTER = "cancelled_on_printer"  # someone cancelled it at the printer
    PRINTER_ERROR = "printer_error"  # the printer or its host is in an error state
    QA_FAILED = "qa_failed"  # printed, but the part did not pass the site's checks
    MATERIAL_UNAVAILABLE = "material_unavailable"
    ARTIFACT_INVALID = "artifact_invalid"  # the download did not match its checksum, or the host refused it
    OTHER = "other"


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    printer_id: uuid.UUID | None = Field(default=None, description="Only jobs for this printer of the site.")
    materials: list[Annotated[str, StringConstraints(min_length=1, max_length=40)]] | None = Field(
        default=None, max_length=20, description="Only jobs in one of these materials (what is loaded)."
    )
    wait_seconds: float = Field(
        default=0,
        strict=True,
        ge=0,
        le=60,
        description="Long-poll: wait up to this long for a job (capped by the server).",
    )


class LeaseOut(BaseModel):
    token: str
    fence: int
    expires_at: datetime
    seconds: float = Field(description="The lease's length; heartbeat well within it (a third is usual).")


class ArtifactOut(BaseModel):
    kind: ArtifactKind
    sha256: str
    bytes: int
    format: str  # "gcode", "stl", "3mf", "obj"
    url: str


class EstimateOut(BaseModel):
    print_seconds: float
    filament_g: float
    slicer: str


class FactoryJobOut(BaseModel):
    """A print job as its site sees it."""

    id: uuid.UUID
    order_id: uuid.UUID | None
    status: str
    printer_id: uuid.UUID | None
    printer_key: str | None
    material: str | None
    quantity: int
    part_number: str | None
    revision_id: uuid.UUID
    fence: int
    lease_expires_at: datetime | None
    progress: float | None
    printer_state: PrinterState | None
    failures_here: int
    ready_by: datetime | None = Field(
        description="When the part should leave the printer to keep the promise."
    )
    estimate: EstimateOut | None
    artifacts: list[ArtifactOut]
    failure_code: str | None
    completed_at: datetime | None


class ClaimedJobOut(BaseModel):
    job: FactoryJobOut
    lease: LeaseOut


class HeartbeatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: LeaseToken
    progress: float = Field(
        strict=True, ge=0, le=100, description="Percent done, as the print host reports it."
    )
    printer_state: PrinterState


class HeartbeatOut(BaseModel):
    status: str
    lease: LeaseOut


class QaCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=80)]
    passed: bool = Field(strict=True)


class CompleteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: LeaseToken
    part_weight_g: float | None = Field(default=None, strict=True, ge=0, le=1_000_000)
    qa_checks: list[QaCheck] = Field(default_factory=list, max_length=50)
    notes: str = Field(default="", max_length=2000)


class FailIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: LeaseToken
    reason: FailReason
    retry_here: bool = Field(strict=True, description="Whether printing it again at this site makes sense.")
    message: str = Field(default="", max_length=2000)


class FactoryJobPageOut(BaseModel):
    items: list[FactoryJobOut]
