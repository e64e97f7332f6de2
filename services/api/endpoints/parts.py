"""The parts catalog: parts, their revisions and model files."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from parts_catalog.formats import ModelFormat
from parts_catalog.repository import PartFilter
from parts_catalog.schemas import EquipmentModel, PartPatch, SearchText
from parts_catalog.units import Unit
from services.api.deps import Admin, Catalog, CatalogReader, ModelUpload, Printing, Resources
from services.api.downloads import blob_download, download_response
from services.api.endpoints import error_responses
from services.api.schemas import PartCreate, PartOut, RevisionOut
from services.pages import Page

router = APIRouter(prefix="/parts", tags=["parts"])

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "STL, OBJ or 3MF"},
                        "note": {"type": "string", "maxLength": 1000},
                        "units": {"type": "string", "enum": [u.value for u in Unit]},
                    },
                }
            }
        },
    }
}


@router.post("", status_code=201, responses=error_responses(400, 409, 422))
async def create_part(body: PartCreate, _: Admin, catalog: Catalog) -> PartOut:
    return PartOut.of(await catalog.create_part(organization_id=body.organization_id, spec=body))


@router.get("", responses=error_responses(422))
async def search_parts(
    principal: CatalogReader,
    catalog: Catalog,
    q: Annotated[
        SearchText | None, Query(description="Words that all appear in number, name or description")
    ] = None,
    part_number: Annotated[
        SearchText | None, Query(description="Part number prefix, case-insensitive")
    ] = None,
    equipment_model: Annotated[EquipmentModel | None, Query(description="Fits this equipment model")] = None,
    organization_id: Annotated[
        uuid.UUID | None, Query(description="Operators: one organization only")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Page[PartOut]:
    criteria = PartFilter(
        text=q, part_number=part_number, equipment_model=equipment_model, organization_id=organization_id
    )
    page = await catalog.search_parts(
        criteria, visible_to=principal.catalog_scope, limit=limit, cursor=cursor
    )
    return Page[PartOut](items=[PartOut.of(r) for r in page.items], next_cursor=page.next_cursor)


@router.get("/{part_id}", responses=error_responses(404, 422))
async def get_part(part_id: uuid.UUID, principal: CatalogReader, catalog: Catalog) -> PartOut:
    return PartOut.of(await catalog.get_part(part_id, visible_to=principal.catalog_scope))


@router.patch("/{part_id}", responses=error_responses(400, 404, 422))
async def update_part(part_id: uuid.UUID, body: PartPatch, principal: Admin, catalog: Catalog) -> PartOut:
    return PartOut.of(await catalog.update_part(part_id, body, visible_to=principal.catalog_scope))


@router.post(
    "/{part_id}/revisions",
    status_code=202,
    openapi_extra=_UPLOAD_BODY,
    responses=error_responses(400, 404, 413, 415, 422),
)
async def upload_revision(
    part_id: uuid.UUID, principal: Admin, upload: ModelUpload, printing: Printing
) -> RevisionOut:
    """Upload a model (STL, OBJ or 3MF; the format is read from the content) as the part's next revision.

    Accepted for checking: the revision starts as `uploaded`; a worker checks (and if needed repairs) it
    and moves it to `ready` or `rejected` with its geometry report. The body streams to storage and is
    refused with 413 as soon as it passes the configured cap. Optional `units` (millimeter, centimeter,
    meter, inch, foot, micron) says what the file's numbers mean; 3MF files carry their own.
    """
    revision = await printing.accept_revision(
        part_id, upload, visible_to=principal.catalog_scope, created_by=principal.key_id
    )
    return RevisionOut.of(revision)


@router.get("/{part_id}/revisions", responses=error_responses(404, 422))
async def list_revisions(part_id: uuid.UUID, principal: CatalogReader, catalog: Catalog) -> list[RevisionOut]:
    return [
        RevisionOut.of(r) for r in await catalog.list_revisions(part_id, visible_to=principal.catalog_scope)
    ]


@router.get("/{part_id}/revisions/{revision_id}", responses=error_responses(404, 422))
async def get_revision(
    part_id: uuid.UUID, revision_id: uuid.UUID, principal: CatalogReader, catalog: Catalog
) -> RevisionOut:
    return RevisionOut.of(
        await catalog.get_revision(part_id, revision_id, visible_to=principal.catalog_scope)
    )


@router.get(
    "/{part_id}/revisions/{revision_id}/model",
    response_class=StreamingResponse,
    responses={
        **error_responses(404, 422),
        200: {"content": {m: {} for m in {f.media_type for f in ModelFormat}}},
    },
)
async def download_model(
    part_id: uuid.UUID,
    revision_id: uuid.UUID,
    principal: CatalogReader,
    catalog: Catalog,
    resources: Resources,
) -> StreamingResponse:
    """The model file exactly as uploaded."""
    revision = await catalog.get_revision(part_id, revision_id, visible_to=principal.catalog_scope)
    model = await blob_download(
        resources.blobs,
        revision.blob_sha256,
        size=revision.size_bytes,
        media_type=revision.format.media_type,
        filename=revision.filename,
    )
    return download_response(model)
