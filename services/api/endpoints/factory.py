"""The factory API: a microfactory's agents pull their site's print jobs under leases and report back.

Factory keys only, and only their own site's jobs: another site's job answers 404 like a missing one.
See ``services.fulfilment.leases`` for how leases and fencing tokens keep a job printed at most once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import StreamingResponse

from parts_catalog.formats import ModelFormat
from parts_catalog.storage import BlobNotFound, BlobStore
from services.api.deps import Factory, FactoryJobService, Resources
from services.api.downloads import Download, RangeRequest, blob_download, download_response
from services.api.endpoints import error_responses
from services.fulfilment.leases import Artifact, FactoryJob
from services.printing.schemas import (
    ArtifactKind,
    ClaimedJobOut,
    ClaimIn,
    CompleteIn,
    FactoryJobOut,
    FactoryJobPageOut,
    FailIn,
    HeartbeatIn,
    HeartbeatOut,
)

router = APIRouter(prefix="/factory", tags=["factory"])
# A job's routes take only UUID-shaped ids (`{job_id:uuid}`): with a plain `{job_id}`,
# `GET /factory/jobs/claim` would be `GET /factory/jobs/{job_id}` with the id "claim" (422) instead of a
# method `/jobs/claim` does not have (405, `Allow: POST`). The OpenAPI document shows the path without the
# converter.


async def _out(view: FactoryJob, blobs: BlobStore) -> FactoryJobOut:
    sizes = {}
    for artifact in view.artifacts():
        if artifact.bytes is not None:
            continue
        try:
            sizes[artifact.sha256] = await blobs.size(artifact.sha256)
        except BlobNotFound:
            sizes[artifact.sha256] = 0
    return view.out(sizes)


@router.post(
    "/jobs/claim",
    response_model=ClaimedJobOut,
    responses={**error_responses(400, 404, 422), 204: {"description": "No job is ready for this printer"}},
)
async def claim_job(
    body: ClaimIn, caller: Factory, jobs: FactoryJobService, resources: Resources, request: Request
) -> Response:
    """Lease the site's most urgent ready job (for `printer_id`, in one of `materials`). With
    `wait_seconds`, wait up to that long (at most the server's limit) for one; 204 when there is none.
    A `printer_id` that is not one of the site's printers: 404 `printer_not_found`, at once.

    The lease's `token` must accompany every heartbeat, complete and fail; heartbeat well within
    `lease.seconds`. A lease that runs out returns the job to the queue, and its token is refused from
    then on (409 `lease_lost`)."""
    settings = resources.settings
    deadline = time.monotonic() + min(body.wait_seconds, settings.factory_claim_max_wait_s)
    while True:
        claimed = await jobs.claim(caller, body)
        if claimed is not None:
            view, lease = claimed
            answer = ClaimedJobOut(job=await _out(view, resources.blobs), lease=lease.out())
            return Response(answer.model_dump_json(), media_type="application/json")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Response(status_code=204)
        # Hold no database connection while waiting: a hundred waiting agents must not drain the pool.
        await jobs.session.commit()
        await asyncio.sleep(min(settings.factory_claim_poll_s, remaining))
        if await request.is_disconnected():
            # The agent gave up (stopped, killed): a job claimed now would be leased to no one.
            return Response(status_code=204)


@router.get("/jobs", responses=error_responses())
async def list_jobs(caller: Factory, jobs: FactoryJobService, resources: Resources) -> FactoryJobPageOut:
    """The site's ready, claimed and printing jobs."""
    return FactoryJobPageOut(
        items=[await _out(view, resources.blobs) for view in await jobs.active_jobs(caller)]
    )


@router.get("/jobs/{job_id:uuid}", responses=error_responses(404, 422))
async def get_job(
    job_id: uuid.UUID, caller: Factory, jobs: FactoryJobService, resources: Resources
) -> FactoryJobOut:
    return await _out(await jobs.job(caller, job_id), resources.blobs)


@router.post("/jobs/{job_id:uuid}/heartbeat", responses=error_responses(400, 404, 409, 422))
async def heartbeat(
    job_id: uuid.UUID, body: HeartbeatIn, caller: Factory, jobs: FactoryJobService
) -> HeartbeatOut:
    """Report progress and the printer's state; extends the lease. 409 `lease_lost`: stop printing it."""
    job, lease = await jobs.heartbeat(caller, job_id, body)
    return HeartbeatOut(status=job.status.value, lease=lease.out())


@router.post("/jobs/{job_id:uuid}/complete", responses=error_responses(400, 404, 409, 422))
async def complete_job(
    job_id: uuid.UUID, body: CompleteIn, caller: Factory, jobs: FactoryJobService, resources: Resources
) -> FactoryJobOut:
    """The part is printed and passed the site's checks. The same token and body again answer the same;
    other measurements for a completed job: 409 `completion_conflict`."""
    return await _out(await jobs.complete(caller, job_id, body), resources.blobs)


@router.post("/jobs/{job_id:uuid}/fail", responses=error_responses(400, 404, 409, 422))
async def fail_job(
    job_id: uuid.UUID, body: FailIn, caller: Factory, jobs: FactoryJobService, resources: Resources
) -> FactoryJobOut:
    """The print failed. With `retry_here` it is queued at this site again, unless it has failed here too
    often; otherwise its order is routed to another site."""
    return await _out(await jobs.fail(caller, job_id, body), resources.blobs)


@router.get(
    "/jobs/{job_id:uuid}/artifacts/{kind}",
    response_class=StreamingResponse,
    responses={
        **error_responses(400, 404, 409, 416, 422),
        200: {"content": {"application/octet-stream": {}}},
        206: {"description": "The requested byte range"},
    },
)
async def download_artifact(
    job_id: uuid.UUID,
    kind: ArtifactKind,
    caller: Factory,
    jobs: FactoryJobService,
    resources: Resources,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
    if_range: Annotated[str | None, Header(alias="If-Range")] = None,
) -> StreamingResponse:
    """The job's G-code (`gcode`) or model (`model`), streamed. `ETag` and `Repr-Digest` carry its sha256;
    a `Range` header resumes a download (206), and `If-Range` with the ETag makes that safe."""
    artifact = await jobs.artifact(caller, job_id, kind)
    download = await _download(artifact, job_id, resources.blobs)
    return download_response(download, ranges=RangeRequest(range_header, if_range))


async def _download(artifact: Artifact, job_id: uuid.UUID, blobs: BlobStore) -> Download:
    if artifact.kind == "gcode":
        media_type, extension = "text/x.gcode", "gcode"
    else:
        model = ModelFormat(artifact.format)
        media_type, extension = model.media_type, model.extension
    # The size comes from the store even when recorded: a missing file is a 404 before any byte is sent.
    return await blob_download(
        blobs, artifact.sha256, media_type=media_type, filename=f"{job_id}.{extension}"
    )
