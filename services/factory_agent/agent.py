"""The factory agent: claims its printer's jobs from the factory API, prints them on the print host, reports.

The course of one job::

    claim (long-poll) -> journal it -> download + verify the G-code -> heartbeat (the lease must hold)
      -> host.start("{job_id}-{fence}.gcode") -> heartbeat every lease/3 with the host's progress
      -> host says done: complete | failed/error: fail | the API says lease_lost: cancel our print, drop it

The journal (``journal.py``) records the held job before anything happens to it, and a restarted agent
reconciles that record with the host before claiming anything: each step is decided by
``decisions.next_step`` from the journal's phase and what the host says of the job's file, the same rule
whether the agent just started the print or comes back to it after a crash. Nothing is printed twice: the
host file names the job and its fence, the agent starts a file only right after a heartbeat of its lease
succeeded, and it cancels its print when the API says the lease is gone.

The API may be down for any length of time: every call is retried with exponential backoff and jitter
(capped), and the print host keeps printing meanwhile. SIGTERM sets ``stop``: the agent finishes the request
in flight (a claim's long poll included: the server may have leased a job to it) and returns, keeping the
journal, so the next start reconciles. Only a download is abandoned at once: it resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from services.factory_agent.client import (
    ApiRejected,
    ApiUnavailable,
    FactoryApiClient,
    FactoryApiError,
    JobLost,
)
from services.factory_agent.decisions import Action, Step, next_step, printer_state
from services.factory_agent.downloads import ArtifactInvalid, artifact_path, fetch_artifact
from services.factory_agent.events import EventLog
from services.factory_agent.journal import JobRecord, Journal, Phase
from services.factory_agent.print_hosts import HostState, HostStatus, PrintHost, PrintHostError
from services.printing.schemas import (
    ClaimedJobOut,
    ClaimIn,
    CompleteIn,
    FailIn,
    FailReason,
    HeartbeatIn,
    PrinterState,
    QaCheck,
)

T = TypeVar("T")
# The host states in which the printer can take a new job.
_FREE = {HostState.IDLE, HostState.DONE, HostState.FAILED}
# Repeated log lines (heartbeats, an API or host outage) at most this often.
QUIET_S = 60.0


class Interrupted(Exception):
    """The agent is stopping, or lost the job: drop what it was waiting for."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits between half and all of ``first_s * 2**n``, capped."""

    first_s: float = 0.5
    cap_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        ceiling = min(self.cap_s, self.first_s * 2 ** min(attempt, 32))
        # Jitter keeps a site's agents from retrying in step after an outage; no secret depends on it.
        delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap_s))
        return delay


async def pause(seconds: float, until: asyncio.Event) -> None:
    """Sleep ``seconds``, or raise Interrupted as soon as ``until`` is set."""
    if until.is_set():
        raise Interrupted
    try:
        await asyncio.wait_for(until.wait(), seconds)
    except TimeoutError:
        return
    raise Interrupted


async def abortable(work: Awaitable[T], until: asyncio.Event) -> T:
    """``work``'s result, or Interrupted (``work`` cancelled) when ``until`` is set first.

    For work worth abandoning on a stop, such as a download (it resumes).
    """
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(until.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise Interrupted


class FactoryAgent:
    """One printer's agent.

    Args:
        client: the factory API, with the site's factory key.
        host: the printer's print host.
        printer_id: claim only this printer's jobs (None: any of the site's).
        materials: claim only jobs in these materials (what is loaded); None: any.
        state_dir: the journal and downloads; one agent per directory.
        log: where the JSON event lines go (stdout by default).
        claim_wait_s: how long one claim waits on the server for a job.
        poll_s: how often the host is asked while a job is held, or while it is not ready for one.
        host_grace_s: how long an unstarted job waits for a host that is offline, in error or busy with
            another print before it is given back (failed with ``printer_error``).
        backoff: the retry policy for API outages.
    """

    def __init__(
        self,
        client: FactoryApiClient,
        host: PrintHost,
        *,
        printer_id: uuid.UUID | None,
        materials: list[str] | None,
        state_dir: Path,
        log: EventLog | None = None,
        claim_wait_s: float = 20.0,
        poll_s: float = 5.0,
        host_grace_s: float = 600.0,
        backoff: Backoff = Backoff(),
    ) -> None:
        self.client = client
        self.host = host
        self.printer_id = printer_id
        self.materials = materials
        self.journal = Journal(state_dir)
        self.downloads_dir = state_dir / "artifacts"
        self.log = log or EventLog()
        self.claim_wait_s = claim_wait_s
        self.poll_s = poll_s
        self.host_grace_s = host_grace_s
        self.backoff = backoff

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile the journalled job, then claim and print jobs until ``stop`` is set.

        Raises:
            StateDirLocked: another agent uses the state directory.
            JournalUnreadable: the journalled job cannot be read.
            ApiRejected: the API refused the key or a request (permanent; the journal is kept).
            PrintHostError: the print host refused the agent (permanent, e.g. a wrong key).
        """
        with self.journal.locked():
            self.log.emit(
                "agent_started",
                printer_id=self.printer_id,
                host=self.host.name,
                materials=self.materials,
                state_dir=self.journal.state_dir,
            )
            record = self.journal.load()
            if record is not None:
                await self._hold(record, stop, resumed=True)
            while not stop.is_set():
                try:
                    if not await self._host_ready(stop):
                        continue
                    claimed = await self._claim(stop)
                    if claimed is not None:
                        await self._take(claimed, stop)
                except Interrupted:
                    break
            held = self.journal.load()
            self.log.emit("agent_stopped", holding=held.job_id if held else None)

    # --- between jobs ----------------------------------------------------------------------------------

    async def _host_ready(self, stop: asyncio.Event) -> bool:
        status = await self._host_status(None)
        if status.state in _FREE:
            self.log.forget("host_not_ready")
            return True
        self.log.throttled(
            "host_not_ready", QUIET_S, "host_not_ready", host_state=status.state, message=status.message
        )
        await pause(self.poll_s, stop)
        return False

    async def _claim(self, stop: asyncio.Event) -> ClaimedJobOut | None:
        request = ClaimIn(
            printer_id=self.printer_id, materials=self.materials, wait_seconds=self.claim_wait_s
        )
        # Not abandoned on a stop: the server may claim a job for a poll the agent has left, and that job
        # would wait out its lease unprinted. Waiting costs at most claim_wait_s.
        return await self._retrying("claim", lambda: self.client.claim(request), stop)

    async def _take(self, claimed: ClaimedJobOut, stop: asyncio.Event) -> None:
        job, lease = claimed.job, claimed.lease
        self.log.emit(
            "claimed",
            job_id=job.id,
            fence=lease.fence,
            part_number=job.part_number,
            material=job.material,
            lease_seconds=lease.seconds,
        )
        gcode = next((a for a in job.artifacts if a.kind == "gcode"), None)
        if gcode is None:
            step = Step(
                Action.FAIL, FailReason.ARTIFACT_INVALID, "the job came without G-code", retry_here=False
            )
            try:
                await self._fail(job.id, lease.token, step, stop)
            except JobLost as exc:
                self.log.emit("lease_lost", job_id=job.id, code=exc.code, reason=exc.reason)
            return
        record = JobRecord(
            job_id=job.id,
            token=lease.token,
            fence=lease.fence,
            lease_seconds=lease.seconds,
            phase=Phase.CLAIMED,
            gcode=gcode,
            filament_g=job.estimate.filament_g if job.estimate else None,
        )
        self.journal.save(record)
        if stop.is_set():
            # Claimed during the last poll: the next start of the agent takes it from the journal.
            self.log.emit("job_kept", job_id=record.job_id, phase=record.phase)
            return
        await self._hold(record, stop, resumed=False)

    # --- holding a job ---------------------------------------------------------------------------------

    async def _hold(self, record: JobRecord, stop: asyncio.Event, *, resumed: bool) -> None:
        """Work on the journalled job until it is reported, lost, or the agent stops (journal kept)."""
        abort = asyncio.Event()  # the driver's: stop, or the keeper lost the lease
        keeper = _LeaseKeeper(self, record, abort)
        relay = asyncio.create_task(_relay(stop, abort, keeper.halted))
        finished, lost = False, None
        try:
            finished = await self._drive(record, keeper, abort, resumed=resumed)
        except JobLost as exc:
            lost = exc
        except Interrupted:
            pass
        finally:
            await keeper.halt()
            relay.cancel()
        if keeper.failure is not None:
            raise keeper.failure
        lost = lost or (None if finished else keeper.lost)
        if lost is not None:
            await self._let_go(record, lost, stop)
        elif finished:
            await self._forget(record)
        else:
            self.log.emit("job_kept", job_id=record.job_id, phase=record.phase)

    async def _drive(
        self, record: JobRecord, keeper: _LeaseKeeper, abort: asyncio.Event, *, resumed: bool
    ) -> bool:
        """Take the job to its end: True once completed or failed at the API."""
        trouble_since: float | None = None
        reconciling = resumed
        local: Path | None = None  # the verified G-code, once downloaded
        while True:
            status = await self._host_status(record.host_file)
            keeper.report(status)
            if not keeper.begun:
                # After the first report, so that a heartbeat never tells the API less than the host knows.
                keeper.begin(immediate=resumed)
            trouble_for = 0.0 if trouble_since is None else time.monotonic() - trouble_since
            step = next_step(record.phase, status, trouble_for=trouble_for, grace_s=self.host_grace_s)
            if reconciling:
                reconciling = False
                self.log.emit(
                    "reconciled",
                    job_id=record.job_id,
                    phase=record.phase,
                    host_state=status.state,
                    action=step.action,
                )
            if step.action is Action.START and local is None:
                fetched = await self._download(record, abort)
                if isinstance(fetched, Step):
                    step = fetched
                else:
                    local = fetched
            if step.action is Action.START and local is not None:
                step = await self._start(record, keeper, abort, local)
            match step.action:
                case Action.WATCH:
                    trouble_since = None
                    await pause(self.poll_s, abort)
                case Action.WAIT:
                    trouble_since = trouble_since or time.monotonic()
                    self.log.throttled(
                        f"waiting:{record.job_id}",
                        QUIET_S,
                        "host_waiting",
                        job_id=record.job_id,
                        host_state=status.state,
                        message=step.message,
                    )
                    await pause(self.poll_s, abort)
                case Action.COMPLETE:
                    await keeper.halt()
                    await self._complete(record, abort)
                    return True
                case Action.FAIL:
                    await keeper.halt()
                    await self._fail(record.job_id, record.token, step, abort)
                    return True

    async def _download(self, record: JobRecord, abort: asyncio.Event) -> Path | Step:
        """The job's G-code, verified, or the FAIL step when it cannot be had."""
        try:
            downloaded = await self._retrying(
                "download",
                lambda: abortable(fetch_artifact(self.client, record.gcode, self.downloads_dir), abort),
                abort,
                job_id=record.job_id,
            )
        except ArtifactInvalid as exc:
            return Step(Action.FAIL, FailReason.ARTIFACT_INVALID, str(exc))
        except ApiRejected as exc:
            return Step(Action.FAIL, FailReason.ARTIFACT_INVALID, f"the download was refused: {exc}")
        self.log.emit(
            "downloaded",
            job_id=record.job_id,
            sha256=record.gcode.sha256,
            bytes=record.gcode.bytes,
            resumed_from=downloaded.resumed_from,
            fetched=downloaded.fetched,
        )
        return downloaded.path

    async def _start(
        self, record: JobRecord, keeper: _LeaseKeeper, abort: asyncio.Event, gcode: Path
    ) -> Step:
        """Check the lease and start the print: WATCH once started, WAIT to try again, or FAIL."""
        # Never print under a lease that may have gone: one heartbeat must succeed right before the start.
        await keeper.beat(abort)
        if abort.is_set():
            raise Interrupted  # stopping, or the lease went meanwhile: start nothing now
        try:
            await self.host.start(record.host_file, gcode)
        except PrintHostError as exc:
            if not exc.retryable:
                reason = (
                    FailReason.ARTIFACT_INVALID if exc.code == "file_rejected" else FailReason.PRINTER_ERROR
                )
                return Step(Action.FAIL, reason, exc.message, retry_here=False)
            self.log.throttled(
                f"start:{record.job_id}",
                QUIET_S,
                "start_deferred",
                job_id=record.job_id,
                code=exc.code,
                message=exc.message,
            )
            return Step(Action.WAIT, message=exc.message)
        record.phase = Phase.STARTED
        self.journal.save(record)
        self.log.emit("started", job_id=record.job_id, file=record.host_file, host=self.host.name)
        # Tell the API at once that the print is under way (the job becomes printing), not a lease/3 later.
        keeper.report(await self._host_status(record.host_file))
        await keeper.beat(abort)
        return Step(Action.WATCH)

    async def _complete(self, record: JobRecord, abort: asyncio.Event) -> None:
        # The same body every time (a retry after a lost answer must match for the API to accept it).
        body = CompleteIn(
            token=record.token,
            part_weight_g=record.filament_g,
            qa_checks=[QaCheck(name="print_host_reported_success", passed=True)],
            notes=f"printed on {self.host.name}; the weight is the slicer's estimate",
        )
        job = await self._retrying(
            "complete", lambda: self.client.complete(record.job_id, body), abort, job_id=record.job_id
        )
        self.log.emit("completed", job_id=record.job_id, status=job.status)

    async def _fail(self, job_id: uuid.UUID, token: str, step: Step, abort: asyncio.Event) -> None:
        assert step.reason is not None
        body = FailIn(
            token=token, reason=step.reason, retry_here=step.retry_here, message=step.message[:2000]
        )
        job = await self._retrying("fail", lambda: self.client.fail(job_id, body), abort, job_id=job_id)
        self.log.emit(
            "failed",
            job_id=job_id,
            reason=step.reason,
            retry_here=step.retry_here,
            message=step.message,
            status=job.status,
        )

    async def _let_go(self, record: JobRecord, lost: JobLost, stop: asyncio.Event) -> None:
        """The job is not ours any more: cancel our print if it is running, then forget the job.

        While the host cannot be reached the journal is kept: whoever holds the job now must not find our
        print on their printer, so the next start looks again.
        """
        attempt = 0
        while True:
            status = await self._host_status(record.host_file)
            if status.state is not HostState.OFFLINE:
                if not status.busy:
                    cancelled = False
                    break
                try:
                    await self.host.cancel()
                except PrintHostError as exc:
                    if not exc.retryable:
                        raise
                else:
                    cancelled = True
                    break
            try:
                await pause(self.backoff.delay(attempt), stop)
            except Interrupted:
                self.log.emit(
                    "lease_lost", job_id=record.job_id, code=lost.code, reason=lost.reason, kept=True
                )
                return
            attempt += 1
        self.log.emit(
            "lease_lost", job_id=record.job_id, code=lost.code, reason=lost.reason, cancelled_print=cancelled
        )
        await self._forget(record)

    async def _forget(self, record: JobRecord) -> None:
        self.journal.clear()
        self.log.forget(f"heartbeat:{record.job_id}")
        path = artifact_path(self.downloads_dir, record.gcode)
        await asyncio.to_thread(path.unlink, missing_ok=True)

    # --- plumbing --------------------------------------------------------------------------------------

    async def _host_status(self, name: str | None) -> HostStatus:
        """The host's status; a host that errs but may recover reads as offline."""
        try:
            return await self.host.status(name)
        except PrintHostError as exc:
            if not exc.retryable:
                raise
            return HostStatus(HostState.OFFLINE, name, None, exc.message)

    async def _retrying(
        self,
        call: str,
        attempt_once: Callable[[], Awaitable[T]],
        until: asyncio.Event,
        *,
        job_id: uuid.UUID | None = None,
    ) -> T:
        """``attempt_once()``, retried with backoff while the API is unavailable, until ``until`` is set."""
        attempt = 0
        while True:
            try:
                result = await attempt_once()
            except ApiUnavailable as exc:
                delay = self.backoff.delay(attempt, exc.retry_after)
                attempt += 1
                self.log.throttled(
                    f"api:{call}",
                    QUIET_S,
                    "api_unavailable",
                    call=call,
                    job_id=job_id,
                    status=exc.status,
                    code=exc.code,
                    message=exc.message,
                    retry_in_s=round(delay, 2),
                )
                await pause(delay, until)
                continue
            if attempt:
                self.log.forget(f"api:{call}")
                self.log.emit("api_recovered", call=call, job_id=job_id, attempts=attempt + 1)
            return result


class _LeaseKeeper:
    """Heartbeats one job's lease every ``lease.seconds / 3`` with what the host last said."""

    def __init__(self, agent: FactoryAgent, record: JobRecord, abort: asyncio.Event) -> None:
        self._agent = agent
        self._record = record
        self._abort = abort
        self._interval = record.lease_seconds / 3
        self._task: asyncio.Task[None] | None = None
        self.halted = asyncio.Event()
        self.progress = 0.0
        self.printer_state = PrinterState.PREPARING
        self.lost: JobLost | None = None
        self.failure: FactoryApiError | None = None

    def report(self, status: HostStatus) -> None:
        if status.progress is not None:
            self.progress = max(0.0, min(100.0, status.progress))
        self.printer_state = printer_state(status)

    @property
    def begun(self) -> bool:
        return self._task is not None

    def begin(self, *, immediate: bool) -> None:
        """Start heartbeating; at once when the last heartbeat may be long ago (a restart)."""
        self._task = asyncio.create_task(self._keep(immediate))

    async def halt(self) -> None:
        """Stop heartbeating, after the heartbeat in flight."""
        self.halted.set()
        if self._task is not None:
            await self._task

    async def beat(self, until: asyncio.Event) -> None:
        """One heartbeat, retried while the API is unavailable.

        Raises:
            JobLost: the lease is gone.
            Interrupted: ``until`` was set while waiting to retry.
        """
        agent, record = self._agent, self._record
        body = HeartbeatIn(token=record.token, progress=self.progress, printer_state=self.printer_state)
        answer = await agent._retrying(
            "heartbeat", lambda: agent.client.heartbeat(record.job_id, body), until, job_id=record.job_id
        )
        self._interval = answer.lease.seconds / 3
        agent.log.throttled(
            f"heartbeat:{record.job_id}",
            QUIET_S,
            "heartbeat",
            job_id=record.job_id,
            progress=round(body.progress, 1),
            printer_state=body.printer_state,
            job_status=answer.status,
        )

    async def _keep(self, immediate: bool) -> None:
        wait = 0.0 if immediate else self._interval
        while True:
            try:
                await pause(wait, self.halted)
                await self.beat(self.halted)
            except Interrupted:
                return
            except JobLost as exc:
                self.lost = exc
                self._abort.set()
                return
            except FactoryApiError as exc:
                self.failure = exc
                self._abort.set()
                return
            wait = self._interval


async def _relay(stop: asyncio.Event, *events: asyncio.Event) -> None:
    await stop.wait()
    for event in events:
        event.set()
