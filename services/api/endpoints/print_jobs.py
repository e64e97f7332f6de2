"""Print jobs: a part revision prepared (checked, oriented, sliced) for one printer. Operators only for now;
routing creates them for orders."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from services.api.deps import Admin, Printing, Resources
from services.api.downloads import blob_download, download_response
from services.api.endpoints import error_responses
from services.api.schemas import PrintJobIn, PrintJobOut

router = APIRouter(prefix="/print-jobs", tags=["print jobs"])


@router.post("", status_code=202, responses=error_responses(400, 404, 422))
async def create_print_job(body: PrintJobIn, _: Admin, printing: Printing) -> PrintJobOut:
    """Prepare a revision for a printer. The job is `waiting_geometry` until a worker has checked the model,
    chosen its orientation for the bed and sliced it (or taken the slice cache's result); then `ready`
    with G-code and estimates, or `failed` with a reason."""
    job = await printing.create_job(body.revision_id, body.printer)
    return PrintJobOut.of(await printing.job_view(job.id))


@router.get("/{job_id}", responses=error_responses(404, 422))
async def get_print_job(job_id: uuid.UUID, _: Admin, printing: Printing) -> PrintJobOut:
    return PrintJobOut.of(await printing.job_view(job_id))


@router.get(
    "/{job_id}/gcode",
    response_class=StreamingResponse,
    responses={**error_responses(404, 409, 422), 200: {"content": {"text/x.gcode": {}}}},
)
async def download_gcode(
    job_id: uuid.UUID, _: Admin, printing: Printing, resources: Resources
) -> StreamingResponse:
    """The job's G-code, once it is ready."""
    artifact = await printing.ready_artifact(job_id)
    gcode = await blob_download(
        resources.blobs,
        artifact.gcode_sha256,
        size=artifact.gcode_bytes,
        media_type="text/x.gcode",
        filename=f"{job_id}.gcode",
    )
    return download_response(gcode)
