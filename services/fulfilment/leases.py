"""The factory side of print jobs: a site's agents claim ready jobs under a lease, report progress, and
complete or fail them.

A lease is the right to print one job. Claiming increases the job's ``fence`` and issues a token
``"<fence>.<secret>"``; heartbeat, complete and fail count only with the current token of an unexpired
lease. So an agent that was paused, cut off or restarted past its lease cannot finish a job that another
agent has claimed since (409 ``lease_lost``), and no job is printed twice to the platform's knowledge.
A job whose lease ran out goes back to ``ready`` (the next claim at its site or the sweeper does it). Every
claim is kept in ``print_job_lease``.

Each call runs in the caller's transaction and takes its locks in the order of
``services.fulfilment.unit_of_work`` (the order before the job). The order follows its job
(``services.fulfilment.follow``): printing once claimed, printed when completed, back to ready when a
print is lost, re-routed when a job has failed too often at its site or cannot be retried there.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import overload

from sqlalchemy.exc import IntegrityError

from parts_catalog.models import PartRevision
from parts_catalog.sqltypes import utcnow
from services.config import Settings
from services.db import serialize_writes
from services.errors import Conflict, InvalidRequest, NotFound
from services.factories.models import Printer
from services.factories.schemas import SiteStatus
from services.fulfilment.follow import follow
from services.fulfilment.repository import FactoryJobRepository
from services.fulfilment.unit_of_work import lock_job, site_registry
from services.observability.metrics import LEASE_EXPIRIES
from services.orders.models import Order
from services.orders.service import OrderService
from services.printing import states
from services.printing.models import (
    LEASED,
    LeaseOutcome,
    PrintJob,
    PrintJobLease,
    PrintJobStatus,
    SitePresence,
    SliceArtifact,
)
from services.printing.schemas import (
    ArtifactKind,
    ArtifactOut,
    ClaimIn,
    CompleteIn,
    EstimateOut,
    FactoryJobOut,
    FailIn,
    HeartbeatIn,
    LeaseOut,
    PrinterState,
)
from services.printing.service import PrintModel
from services.routing.schemas import RoutingOut

J = PrintJobStatus
# Presence is written at most this often per site: agents polling every second must not all update one row.
PRESENCE_RESOLUTION = timedelta(seconds=10)
# Printer states that mean the print has begun on the machine.
_UNDER_WAY = {PrinterState.HEATING, PrinterState.PRINTING, PrinterState.PAUSED, PrinterState.FINISHING}
# Where the job's site has stopped: nothing more to claim or report there.
_OVER = {J.DONE: "job_finished", J.FAILED: "job_finished", J.CANCELLED: "job_cancelled"}


class LeaseLost(Conflict):
    """The caller does not hold the job's lease (any more); it must stop working on the job."""

    code = "lease_lost"


class JobNotClaimed(Conflict):
    code = "job_not_claimed"


class CompletionConflict(Conflict):
    code = "completion_conflict"


class QaCheckFailed(InvalidRequest):
    code = "qa_check_failed"


class PrinterNotFound(NotFound):
    """The printer is not the caller's site's: another site's answers like one that does not exist."""

    code = "printer_not_found"


@dataclass(frozen=True, slots=True)
class FactoryCaller:
    site_id: uuid.UUID
    key_id: str


@dataclass(frozen=True, slots=True)
class Lease:
    token: str
    fence: int
    expires_at: datetime
    seconds: float

    def out(self) -> LeaseOut:
        return LeaseOut(token=self.token, fence=self.fence, expires_at=self.expires_at, seconds=self.seconds)


@dataclass(frozen=True, slots=True)
class Artifact:
    kind: ArtifactKind
    sha256: str
    format: str
    bytes: int | None  # None: not recorded (a repaired model); the blob store knows


@dataclass(frozen=True, slots=True)
class FactoryJob:
    """A job with what its site needs to print it."""

    job: PrintJob
    order: Order | None
    revision: PartRevision
    part_number: str | None
    printer_key: str | None
    slice: SliceArtifact | None

    def artifacts(self) -> list[Artifact]:
        found = []
        if self.slice is not None:
            found.append(Artifact("gcode", self.slice.gcode_sha256, "gcode", self.slice.gcode_bytes))
        model = PrintModel.of(self.revision)
        uploaded = model.sha256 == self.revision.blob_sha256
        found.append(
            Artifact("model", model.sha256, model.format, self.revision.size_bytes if uploaded else None)
        )
        return found

    def artifact(self, kind: ArtifactKind) -> Artifact:
        for artifact in self.artifacts():
            if artifact.kind == kind:
                return artifact
        raise Conflict(f"the job has no {kind} yet", code="artifact_not_ready", details={"kind": kind})

    def out(self, sizes: Mapping[str, int]) -> FactoryJobOut:
        """``sizes``: the byte counts of the artifacts whose ``bytes`` is not recorded."""
        job, order, sliced = self.job, self.order, self.slice
        ready_by = None
        if order is not None and order.routing is not None:
            ready_by = RoutingOut.model_validate(order.routing).quote.ready_at
        return FactoryJobOut(
            id=job.id,
            order_id=order.id if order else None,
            status=job.status.value,
            printer_id=job.printer_id,
            printer_key=self.printer_key,
            material=job.material,
            quantity=order.quantity if order else 1,
            part_number=self.part_number,
            revision_id=job.revision_id,
            fence=job.fence,
            lease_expires_at=job.lease_expires_at if job.status in LEASED else None,
            progress=job.progress,
            printer_state=PrinterState(job.printer_state) if job.printer_state else None,
            failures_here=job.failures_here,
            ready_by=ready_by,
            estimate=EstimateOut(
                print_seconds=sliced.print_seconds, filament_g=sliced.filament_g, slicer=sliced.slicer
            )
            if sliced
            else None,
            artifacts=[
                ArtifactOut(
                    kind=a.kind,
                    sha256=a.sha256,
                    bytes=a.bytes if a.bytes is not None else sizes.get(a.sha256, 0),
                    format=a.format,
                    url=f"/factory/jobs/{job.id}/artifacts/{a.kind}",
                )
                for a in self.artifacts()
            ],
            failure_code=job.failure_code,
            completed_at=job.completed_at,
        )


def _fence_of(token: str) -> int:
    return int(token.split(".", 1)[0])


def _lapsed(job: PrintJob, now: datetime) -> bool:
    """Whether the job is leased under a lease that has run out by ``now``."""
    return job.status in LEASED and job.lease_expires_at is not None and job.lease_expires_at <= now


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class FactoryJobs:
    def __init__(self, orders: OrderService, *, lease_seconds: float, max_failures_here: int) -> None:
        self.orders = orders
        self.session = orders.session
        self.printing = orders.printing
        self.repo = FactoryJobRepository(self.session)
        self.lease_seconds = lease_seconds
        self.max_failures_here = max_failures_here

    @classmethod
    def configured(cls, orders: OrderService, settings: Settings) -> FactoryJobs:
        return cls(
            orders,
            lease_seconds=settings.factory_lease_seconds,
            max_failures_here=settings.max_print_failures_per_site,
        )

    # --- the agent's calls -----------------------------------------------------------------------------

    async def claim(
        self, caller: FactoryCaller, request: ClaimIn, *, now: datetime | None = None
    ) -> tuple[FactoryJob, Lease] | None:
        """The most urgent job the site may print now (for the printer and materials asked), leased to the
        caller; None when there is none. A job whose lease ran out is taken over (its old lease ends).

        Raises:
            PrinterNotFound: ``request.printer_id`` is not a printer of the caller's site.
        """
        if request.printer_id is not None and not await self.repo.site_has_printer(
            caller.site_id, request.printer_id
        ):
            # Else a wrong id would wait out its long-poll and answer "no job" for ever.
            raise PrinterNotFound(
                "no such printer at this site", details={"printer_id": str(request.printer_id)}
            )
        await self._seen(caller.site_id)
        await serialize_writes(self.session)
        for order_id, job_id in await self.repo.claimable(
            site_id=caller.site_id,
            printer_id=request.printer_id,
            materials=request.materials,
            now=now or utcnow(),
            limit=5,
        ):
            await self.orders.repo.order(order_id, for_update=True)
            job = await self.printing.repo.job(job_id, for_update=True)
            if job is None:
                continue
            # Timestamps are taken under the locks: a lease begins after the one before it ended.
            now = now or utcnow()
            if _lapsed(job, now):
                await self._lapse(job, now)
            if job.status is not J.READY:
                continue
            lease = self._new_lease(job, caller, now)
            states.move(job, J.CLAIMED, at=now)
            job.progress, job.printer_state = 0.0, PrinterState.PREPARING.value
            await self.session.flush()
            await follow(self.orders, job, now=now)
            return await self._view(job), lease
        return None

    async def heartbeat(
        self, caller: FactoryCaller, job_id: uuid.UUID, request: HeartbeatIn, *, now: datetime | None = None
    ) -> tuple[PrintJob, Lease]:
        """Record progress and extend the lease. The job stays claimed until the printer is under way."""
        await self._seen(caller.site_id)
        job = await self._locked(job_id, caller, with_order=False)
        now = now or utcnow()
        self._check_lease(job, request.token, now)
        job.progress = request.progress
        job.printer_state = request.printer_state.value
        if job.status is J.CLAIMED and request.printer_state in _UNDER_WAY:
            states.move(job, J.PRINTING, at=now)
        job.lease_expires_at = now + timedelta(seconds=self.lease_seconds)
        job.updated_at = now
        await self.session.flush()
        return job, self._lease_of(job, request.token)

    async def complete(
        self, caller: FactoryCaller, job_id: uuid.UUID, request: CompleteIn, *, now: datetime | None = None
    ) -> FactoryJob:
        """The part is printed and passed the site's checks. Repeating the same call answers the same."""
        await self._seen(caller.site_id)
        failed = [c.name for c in request.qa_checks if not c.passed]
        if failed:
            raise QaCheckFailed(
                "a part that failed a QA check is not complete: report it through /fail, reason qa_failed",
                details={"failed_checks": failed},
            )
        job = await self._locked(job_id, caller)
        now = now or utcnow()
        fingerprint = _digest(request.model_dump_json(exclude={"token"}))
        if job.status is J.DONE and job.completion is not None:
            done = job.completion
            if hmac.compare_digest(done["token_sha256"], _digest(request.token)):
                if done["fingerprint"] != fingerprint:
                    raise CompletionConflict("the job was completed with other measurements")
                return await self._view(job)
        self._check_lease(job, request.token, now)
        states.move(job, J.DONE, at=now)
        job.completed_at = now
        job.progress, job.printer_state = 100.0, PrinterState.FINISHING.value
        job.completion = {
            "fence": job.fence,
            "token_sha256": _digest(request.token),
            "fingerprint": fingerprint,
            "part_weight_g": request.part_weight_g,
            "qa_checks": [c.model_dump() for c in request.qa_checks],
            "notes": request.notes,
        }
        self._clear_lease(job, now)
        await self._end_lease(job, LeaseOutcome.COMPLETED, None, now)
        await self.session.flush()
        await follow(self.orders, job, now=now)
        return await self._view(job)

    async def fail(
        self, caller: FactoryCaller, job_id: uuid.UUID, request: FailIn, *, now: datetime | None = None
    ) -> FactoryJob:
        """The print did not succeed. Ready again at this site when a retry makes sense and it has not
        failed too often here; else failed, which re-routes its order."""
        await self._seen(caller.site_id)
        job = await self._locked(job_id, caller)
        now = now or utcnow()
        self._check_lease(job, request.token, now)
        job.failures_here += 1
        reason = request.reason.value
        await self._end_lease(job, LeaseOutcome.FAILED, reason, now)
        self._clear_lease(job, now)
        if request.retry_here and job.failures_here < self.max_failures_here:
            states.move(job, J.READY, at=now)
        else:
            states.move(job, J.FAILED, at=now)
            job.failure_code = reason if not request.retry_here else "print_failed_repeatedly"
            job.failure_message = (
                f"failed {job.failures_here} time(s) at its site; last: {reason}: {request.message}"
            )[:4000]
        await self.session.flush()
        await follow(self.orders, job, now=now, reason=reason)
        return await self._view(job)

    async def job(self, caller: FactoryCaller, job_id: uuid.UUID) -> FactoryJob:
        job = await self.printing.repo.job(job_id)
        return await self._view(self._of_site(job, caller, job_id))

    async def active_jobs(self, caller: FactoryCaller) -> list[FactoryJob]:
        """The site's ready, claimed and printing jobs."""
        jobs = await self.repo.site_jobs(caller.site_id, [J.READY, J.CLAIMED, J.PRINTING])
        return [await self._view(job) for job in jobs]

    async def artifact(self, caller: FactoryCaller, job_id: uuid.UUID, kind: ArtifactKind) -> Artifact:
        view = await self.job(caller, job_id)
        if view.job.status in (J.CANCELLED, J.WAITING_GEOMETRY):
            raise Conflict(f"the job is {view.job.status}", code="artifact_not_ready", details={"kind": kind})
        return view.artifact(kind)

    # --- the sweeper's -----------------------------------------------------------------------------------

    async def expire(self, job_id: uuid.UUID, *, now: datetime | None = None) -> bool:
        """Return a job whose lease ran out to ``ready`` (and its order to ready-for-print). Idempotent."""
        job = await self._locked(job_id, None)
        now = now or utcnow()
        if job is None or not _lapsed(job, now):
            return False
        await self._lapse(job, now)
        return True

    async def silence(self, site_id: uuid.UUID, *, now: datetime | None = None) -> bool:
        """Take a silent site offline (its unstarted orders are re-routed); its next call brings it back."""
        now = now or utcnow()
        presence = await self.repo.presence(site_id)
        registry = site_registry(self.session)
        site = await registry.repo.site(site_id)
        if presence is None or site is None or site.status is SiteStatus.OFFLINE:
            return False
        presence.silenced_at = now
        await registry.set_status(site_id, SiteStatus.OFFLINE)
        return True

    # --- helpers -----------------------------------------------------------------------------------------

    async def _seen(self, site_id: uuid.UUID) -> None:
        now = utcnow()
        presence = await self.repo.presence(site_id)
        if presence is None:
            try:
                async with self.session.begin_nested():
                    self.session.add(SitePresence(site_id=site_id, last_seen_at=now))
            except IntegrityError:
                pass  # a concurrent first call of the same site wrote it
            return
        if presence.silenced_at is not None:
            # Silence took the site offline, so its return brings it back; an operator's offline (no
            # silenced_at) is left alone.
            presence.silenced_at = None
            registry = site_registry(self.session)
            site = await registry.repo.site(site_id)
            if site is not None and site.status is SiteStatus.OFFLINE:
                await registry.set_status(site_id, SiteStatus.ONLINE)
        elif now - presence.last_seen_at < PRESENCE_RESOLUTION:
            return
        presence.last_seen_at = now
        await self.session.flush()

    @overload
    async def _locked(
        self, job_id: uuid.UUID, caller: FactoryCaller, *, with_order: bool = True
    ) -> PrintJob: ...

    @overload
    async def _locked(
        self, job_id: uuid.UUID, caller: None, *, with_order: bool = True
    ) -> PrintJob | None: ...

    async def _locked(
        self, job_id: uuid.UUID, caller: FactoryCaller | None, *, with_order: bool = True
    ) -> PrintJob | None:
        """The job, locked for a change: on SQLite the database's write lock comes first (it has no row
        locks, so a job read before it may have changed by the time of the write); then its order (unless
        the change leaves the order alone), then the job. With a caller, another site's job is NotFound."""
        job = await lock_job(self.orders, job_id, with_order=with_order)
        return job if caller is None else self._of_site(job, caller, job_id)

    @staticmethod
    def _of_site(job: PrintJob | None, caller: FactoryCaller, job_id: uuid.UUID) -> PrintJob:
        # Another site's job answers like a missing one: a site learns nothing about others' work.
        if job is None or job.site_id != caller.site_id:
            raise NotFound("no such print job", code="print_job_not_found", details={"job_id": str(job_id)})
        return job

    def _check_lease(self, job: PrintJob, token: str, now: datetime) -> None:
        if job.fence == 0:
            raise JobNotClaimed("the job has not been claimed", details={"status": job.status.value})
        reason = None
        if job.status in _OVER:
            reason = _OVER[job.status]
        elif job.lease_token is None or not hmac.compare_digest(job.lease_token, token):
            fence = _fence_of(token)
            if fence < job.fence:
                reason = "superseded"
            elif fence == job.fence and job.lease_token is None:
                reason = "expired"
            else:
                reason = "unknown_token"
        elif job.lease_expires_at is None or job.lease_expires_at <= now:
            reason = "expired"
        if reason is not None:
            raise LeaseLost(
                "this lease no longer holds the job; stop working on it",
                details={"reason": reason, "status": job.status.value, "fence": job.fence},
            )

    def _new_lease(self, job: PrintJob, caller: FactoryCaller, now: datetime) -> Lease:
        job.fence += 1
        token = f"{job.fence}.{secrets.token_urlsafe(18)}"
        job.lease_token = token
        job.lease_expires_at = now + timedelta(seconds=self.lease_seconds)
        self.session.add(
            PrintJobLease(
                job_id=job.id,
                fence=job.fence,
                site_id=caller.site_id,
                claimed_by=caller.key_id,
                claimed_at=now,
            )
        )
        return self._lease_of(job, token)

    def _lease_of(self, job: PrintJob, token: str) -> Lease:
        assert job.lease_expires_at is not None
        return Lease(
            token=token, fence=job.fence, expires_at=job.lease_expires_at, seconds=self.lease_seconds
        )

    @staticmethod
    def _clear_lease(job: PrintJob, now: datetime) -> None:
        job.lease_token = None
        job.lease_expires_at = None
        job.updated_at = now

    async def _end_lease(
        self, job: PrintJob, outcome: LeaseOutcome, reason: str | None, now: datetime
    ) -> None:
        lease = await self.repo.lease(job.id, job.fence)
        if lease is not None and lease.ended_at is None:
            lease.ended_at, lease.outcome, lease.reason = now, outcome, reason

    async def _lapse(self, job: PrintJob, now: datetime) -> None:
        assert job.lease_expires_at is not None
        # The lease ended when it ran out, not when someone noticed.
        await self._end_lease(job, LeaseOutcome.EXPIRED, "lease_expired", job.lease_expires_at)
        LEASE_EXPIRIES.inc()
        self._clear_lease(job, now)
        states.move(job, J.READY, at=now)
        job.progress = job.printer_state = None
        await self.session.flush()
        await follow(self.orders, job, now=now, reason="lease_expired")

    async def _view(self, job: PrintJob) -> FactoryJob:
        order = await self.orders.repo.order_of_job(job.id, for_update=False)
        revision = await self.orders.catalog.revision(job.revision_id)
        part = await self.orders.catalog.repo.get_part(revision.part_id, visible_to=None)
        printer = await self.session.get(Printer, job.printer_id) if job.printer_id else None
        sliced = await self.printing.repo.artifact(job.slice_artifact_id) if job.slice_artifact_id else None
        return FactoryJob(
            job=job,
            order=order,
            revision=revision,
            part_number=part.part_number if part else None,
            printer_key=printer.key if printer else None,
            slice=sliced,
        )
