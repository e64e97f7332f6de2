"""The print-host port over OctoPrint's REST API (checked against OctoPrint 1.11 and its Virtual Printer).

What OctoPrint tells, and how it maps (see ``to_host_status``):

- ``GET /api/job``: ``state`` is the printer connection's state string (``Operational``, ``Printing``,
  ``Starting``, ``Finishing``, ``Pausing``, ``Paused``, ``Resuming``, ``Cancelling``, ``Printing from SD``,
  ``Offline``, ``Offline after error`` (with ``error``), ``Error``, ``Connecting``...), ``job.file.name`` the
  selected file, ``progress.completion`` the percentage of the file sent. A disconnected printer shows as
  ``Offline`` here already, so ``/api/connection`` adds nothing and is not asked.
- ``GET /api/files/local/{name}``: ``prints.last.success`` is the outcome of the file's last print. Once the
  printer is ``Operational`` again this is the only way to tell a finished print from a failed one:
  ``/api/job`` shows ``completion`` 100 after success and None after a cancel, but only until another
  file is selected, and nothing at all after a reconnect.
- A print ended by a disconnect or a printer error is recorded as failed as the connection closes, so the
  history outranks what the printer does now.
- A cancelled print and one killed by a printer error both record ``success: false``. They differ in what
  follows: an error closes the connection (``Offline after error``), and reconnecting deselects the file;
  a cancel leaves the printer ``Operational`` with the file still selected. So a failed last print of the
  still-selected file on an operational printer was cancelled.
- Uploading with ``print=true`` while a print runs or is paused (or the printer is offline) still stores
  the file and answers 201, with ``effectivePrint: false``; re-uploading the file being printed is 409.
"""

from __future__ import annotations

import asyncio
from enum import Enum, auto
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, Field, ValidationError

from services.factory_agent.print_hosts import HostState, HostStatus, PrintHostBusy, PrintHostError

# An upload of a large G-code file over a slow link may take minutes; everything else answers at once.
UPLOAD_TIMEOUT_S = 600.0

M = TypeVar("M", bound=BaseModel)


class _Kind(Enum):
    READY = auto()
    PRINTING = auto()
    PAUSED = auto()
    ERROR = auto()
    OFFLINE = auto()


# OctoPrint's state strings (octoprint.util.comm.MachineCom.getStateString).
_STATES = {
    "Operational": _Kind.READY,
    "Starting": _Kind.PRINTING,
    "Starting print from SD": _Kind.PRINTING,
    "Starting to send file to SD": _Kind.PRINTING,
    "Printing": _Kind.PRINTING,
    "Printing from SD": _Kind.PRINTING,
    "Sending file to SD": _Kind.PRINTING,
    "Transferring file to SD": _Kind.PRINTING,
    "Finishing": _Kind.PRINTING,
    "Cancelling": _Kind.PRINTING,  # busy until it is over; the history then says failed
    "Resuming": _Kind.PRINTING,
    "Pausing": _Kind.PAUSED,
    "Paused": _Kind.PAUSED,
    "Error": _Kind.ERROR,
    "Offline after error": _Kind.ERROR,
    "Offline": _Kind.OFFLINE,
    "Opening serial connection": _Kind.OFFLINE,
    "Detecting serial connection": _Kind.OFFLINE,
    "Connecting": _Kind.OFFLINE,
}


class _JobFile(BaseModel):
    name: str | None = None


class _JobDetails(BaseModel):
    file: _JobFile = _JobFile()


class _Progress(BaseModel):
    completion: float | None = None


class OctoJob(BaseModel):
    """``GET /api/job``, the parts we read."""

    state: str
    job: _JobDetails = _JobDetails()
    progress: _Progress = _Progress()
    error: str | None = None


class _LastPrint(BaseModel):
    success: bool


class _Prints(BaseModel):
    last: _LastPrint | None = None


class OctoFile(BaseModel):
    """``GET /api/files/local/{name}``, the parts we read."""

    name: str
    prints: _Prints | None = None


class _UploadOutcome(BaseModel):
    effective_print: bool = Field(default=False, alias="effectivePrint")


def to_host_status(job: OctoJob, file: OctoFile | None, name: str | None) -> HostStatus:
    """What became of file ``name`` (the selected file when None), from ``/api/job`` and the file's record.

    Args:
        job: the printer's current job.
        file: ``name``'s record on the host; None when the host has no such file or ``name`` is None.
        name: the file asked about.
    """
    kind = _STATES.get(job.state)
    selected = job.job.file.name
    name = name or selected
    completion = job.progress.completion
    if name is not None and name == selected and kind in (_Kind.PRINTING, _Kind.PAUSED):
        state = HostState.PAUSED if kind is _Kind.PAUSED else HostState.PRINTING
        return HostStatus(state, name, completion, job.state)
    # A recorded outcome is the file's own story, whatever the printer does now. (Each name is printed
    # once: the agent's names carry the lease's fence.)
    last = file.prints.last if file is not None and file.prints is not None else None
    if last is not None and last.success:
        return HostStatus(HostState.DONE, name, 100.0, "last print succeeded")
    if kind is _Kind.ERROR:
        return HostStatus(HostState.ERROR, name, None, job.error or job.state)
    if last is not None:
        cancelled = name == selected and kind is _Kind.READY
        message = "cancelled" if cancelled else f"last print failed (printer now {job.state})"
        return HostStatus(HostState.FAILED, name, None, message, cancelled=cancelled)
    if kind is None:
        # An unknown state is no evidence that a print failed: report nothing we can act on until it passes.
        return HostStatus(HostState.OFFLINE, name, None, f"unrecognised OctoPrint state {job.state!r}")
    if kind is _Kind.OFFLINE:
        return HostStatus(HostState.OFFLINE, name, None, job.state)
    if name is not None and name == selected and completion is not None:
        # The print has just ended and OctoPrint writes the file's history a moment later: still busy.
        return HostStatus(HostState.PRINTING, name, completion, "finishing")
    return HostStatus(HostState.IDLE, name, None)


class OctoPrintHost:
    """A printer behind OctoPrint, reached at ``base_url`` with an API key (header ``X-Api-Key``)."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 10.0) -> None:
        self._base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self._base_url, headers={"X-Api-Key": api_key}, timeout=timeout
        )

    @property
    def name(self) -> str:
        return f"octoprint {self._base_url}"

    async def status(self, name: str | None = None) -> HostStatus:
        try:
            response = await self._send(self._http.build_request("GET", "/api/job"))
            _raise_for_status(response)
            job = _model(OctoJob, response)
            name = name or job.job.file.name
            file = await self._file(name) if name is not None else None
        except PrintHostError as exc:
            if exc.code != "host_unreachable":
                raise
            return HostStatus(HostState.OFFLINE, name, None, exc.message)
        return to_host_status(job, file, name)

    async def start(self, name: str, path: Path) -> None:
        current = await self.status()
        if current.busy:
            raise PrintHostBusy(f"{current.file} is {current.state}")
        if current.state in (HostState.ERROR, HostState.OFFLINE):
            raise PrintHostError("printer_not_ready", current.message, retryable=True)
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            upload = self._http.build_request(
                "POST",
                "/api/files/local",
                files={"file": (name, handle, "application/octet-stream")},
                data={"select": "true", "print": "true"},
                timeout=UPLOAD_TIMEOUT_S,
            )
            response = await self._send(upload)
        finally:
            handle.close()
        if response.status_code == httpx.codes.CONFLICT:
            raise PrintHostBusy(_error_text(response))
        if response.status_code in (httpx.codes.BAD_REQUEST, httpx.codes.UNSUPPORTED_MEDIA_TYPE):
            raise PrintHostError("file_rejected", _error_text(response), retryable=False)
        _raise_for_status(response)
        if not _model(_UploadOutcome, response).effective_print:
            # Stored but not started: the printer got busy or went offline since we looked.
            after = await self.status()
            if after.busy:
                raise PrintHostBusy(f"{after.file} is {after.state}")
            raise PrintHostError("not_started", f"OctoPrint did not start it ({after.state})", retryable=True)

    async def cancel(self) -> None:
        response = await self._send(self._http.build_request("POST", "/api/job", json={"command": "cancel"}))
        if response.status_code == httpx.codes.CONFLICT:
            return  # nothing is printing or paused
        _raise_for_status(response)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _file(self, name: str) -> OctoFile | None:
        response = await self._send(self._http.build_request("GET", f"/api/files/local/{quote(name)}"))
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        _raise_for_status(response)
        return _model(OctoFile, response)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._http.send(request)
        except httpx.TransportError as exc:
            where = f"{request.method} {request.url.path}"
            raise PrintHostError("host_unreachable", f"{where}: {exc!r}", retryable=True) from exc


def _model(model: type[M], response: httpx.Response) -> M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise PrintHostError("host_error", f"unexpected answer: {exc}", retryable=True) from exc


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("error", body)) if isinstance(body, dict) else str(body)


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    if status in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
        raise PrintHostError("unauthorized", "OctoPrint refused the API key", retryable=False)
    raise PrintHostError("host_error", f"HTTP {status}: {_error_text(response)}", retryable=status >= 500)
