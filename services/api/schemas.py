"""Request and response bodies of the HTTP API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from parts_catalog.formats import ModelFormat
from parts_catalog.models import PartRevision, Process, RevisionStatus
from parts_catalog.schemas import Name, PartSpec
from parts_catalog.service import PartRecord
from services.accounts.models import ApiKey, NamedAccount, Role, Slug
from services.accounts.service import OWNER_OF_ROLE, IssuedKey, Principal
from services.factories.models import Printer
from services.factories.schemas import SiteStatus
from services.factories.service import SiteView
from services.printing.models import PrinterSpec, PrintJobStatus
from services.printing.service import JobView
from services.validation import SINGLE_LINE_PATTERN
from slicer_adapters.models import BuildVolume, PrintProfile


class ErrorBody(BaseModel):
    code: str = Field(examples=["part_not_found"])
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class AccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: Slug
    name: Name


class AccountOut(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    created_at: datetime

    @classmethod
    def of(cls, account: NamedAccount) -> AccountOut:
        return cls(id=account.id, slug=account.slug, name=account.name, created_at=account.created_at)


def _one_owner_per_role(schema: dict[str, Any]) -> None:
    """States in the schema the rule ``AccountsService.issue_key`` enforces (422 ``invalid_key_owner``):
    each role names exactly its own kind of owner, an admin key none."""
    owners = ("organization_id", "site_id", "partner_id")
    schema["oneOf"] = [
        {
            "properties": {
                "role": {"const": role.value},
                **{field: {"type": "string"} if field == owner else {"type": "null"} for field in owners},
            },
            "required": ["role", owner] if owner else ["role"],
        }
        for role, owner in OWNER_OF_ROLE.items()
    ]


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_owner_per_role)

    role: Role
    name: Annotated[str, StringConstraints(max_length=200, pattern=SINGLE_LINE_PATTERN)] = ""
    organization_id: uuid.UUID | None = None
    site_id: uuid.UUID | None = None
    partner_id: uuid.UUID | None = None


class KeyOut(BaseModel):
    key_id: str
    role: Role
    name: str
    organization_id: uuid.UUID | None
    site_id: uuid.UUID | None
    partner_id: uuid.UUID | None
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        return cls.model_validate(key, from_attributes=True)


class IssuedKeyOut(KeyOut):
    token: str = Field(description="The API key. Shown once: only its hash is stored.")

    @classmethod
    def issued(cls, issued: IssuedKey) -> IssuedKeyOut:
        return cls(**KeyOut.of(issued.key).model_dump(), token=issued.token)


class MeOut(BaseModel):
    key_id: str
    role: Role
    organization_id: uuid.UUID | None
    site_id: uuid.UUID | None
    partner_id: uuid.UUID | None

    @classmethod
    def of(cls, principal: Principal) -> MeOut:
        return cls.model_validate(principal, from_attributes=True)


class PartCreate(PartSpec):
    organization_id: uuid.UUID


class RevisionSummary(BaseModel):
    id: uuid.UUID
    number: int
    status: RevisionStatus
    format: ModelFormat


class RevisionOut(RevisionSummary):
    part_id: uuid.UUID
    sha256: str
    repaired_sha256: str | None = Field(
        description="The repaired model printing uses, when the check repaired it"
    )
    declared_unit: str | None
    size_bytes: int
    filename: str
    note: str
    format_warnings: list[str]
    geometry_report: dict[str, Any] | None
    created_at: datetime

    @classmethod
    def of(cls, revision: PartRevision) -> RevisionOut:
        return cls(
            id=revision.id,
            number=revision.number,
            status=revision.status,
            format=revision.format,
            part_id=revision.part_id,
            sha256=revision.blob_sha256,
            repaired_sha256=revision.repaired_blob_sha256,
            declared_unit=revision.declared_unit,
            size_bytes=revision.size_bytes,
            filename=revision.filename,
            note=revision.note,
            format_warnings=revision.format_warnings,
            geometry_report=revision.geometry_report,
            created_at=revision.created_at,
        )


class PartOut(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    part_number: str
    name: str
    description: str
    process: Process
    materials: list[str]
    equipment_models: list[str]
    latest_revision: RevisionSummary | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: PartRecord) -> PartOut:
        part, latest = record.part, record.latest_revision
        return cls(
            id=part.id,
            organization_id=part.organization_id,
            part_number=part.part_number,
            name=part.name,
            description=part.description,
            process=part.process,
            materials=part.materials,
            equipment_models=record.equipment_models,
            latest_revision=RevisionSummary.model_validate(latest, from_attributes=True) if latest else None,
            created_at=part.created_at,
            updated_at=part.updated_at,
        )


class PrintJobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    revision_id: uuid.UUID
    printer: PrinterSpec


class SliceOut(BaseModel):
    slicer: str
    slicer_version: str
    print_seconds: float
    filament_mm3: float
    filament_g: float
    layer_count: int
    gcode_sha256: str
    gcode_bytes: int
    warnings: list[str]


class FailureOut(BaseModel):
    code: str
    message: str


class PrintJobOut(BaseModel):
    id: uuid.UUID
    revision_id: uuid.UUID
    status: PrintJobStatus
    printer: PrinterSpec
    attempts: int
    orientation: dict[str, Any] | None
    slice: SliceOut | None
    failure: FailureOut | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: JobView) -> PrintJobOut:
        job, artifact = view.job, view.artifact
        return cls(
            id=job.id,
            revision_id=job.revision_id,
            status=job.status,
            printer=job.printer_spec,
            attempts=job.attempts,
            orientation=job.orientation,
            slice=SliceOut.model_validate(artifact, from_attributes=True) if artifact else None,
            failure=FailureOut(code=job.failure_code, message=job.failure_message or "")
            if job.failure_code
            else None,
            created_at=job.created_at,
            updated_at=job.updated_at,
        )


class PrinterOut(BaseModel):
    id: uuid.UUID
    key: str
    model: str
    process: Process
    build_volume: BuildVolume
    nozzle_mm: float
    materials_supported: list[str]
    materials_loaded: list[str]
    profile: PrintProfile
    slicer: str

    @classmethod
    def of(cls, printer: Printer) -> PrinterOut:
        return cls(
            id=printer.id,
            key=printer.key,
            model=printer.model,
            process=printer.process,
            build_volume=BuildVolume(
                x_mm=printer.build_x_mm, y_mm=printer.build_y_mm, z_mm=printer.build_z_mm
            ),
            nozzle_mm=printer.nozzle_mm,
            materials_supported=printer.materials_supported,
            materials_loaded=printer.materials_loaded,
            profile=PrintProfile.model_validate(printer.profile),
            slicer=printer.slicer,
        )


class SiteOut(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    latitude: float
    longitude: float
    timezone: str
    opening_hours: dict[str, Any]
    courier_cutoffs: dict[str, Any]
    transit: dict[str, Any]
    post_processing_minutes: int
    address: dict[str, Any] | None  # as SiteIn takes it: None until an operator gives one
    courier: str
    status: SiteStatus
    qualified_revisions: list[str] | None
    printers: list[PrinterOut]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: SiteView) -> SiteOut:
        site = view.site
        return cls(
            id=site.id,
            slug=site.slug,
            name=site.name,
            latitude=site.latitude,
            longitude=site.longitude,
            timezone=site.timezone,
            opening_hours=site.opening_hours,
            courier_cutoffs=site.courier_cutoffs,
            transit=site.transit,
            post_processing_minutes=site.post_processing_minutes,
            address=site.address or None,
            courier=site.courier,
            status=site.status,
            qualified_revisions=site.qualified_revisions,
            printers=[PrinterOut.of(p) for p in view.printers],
            created_at=site.created_at,
            updated_at=site.updated_at,
        )
