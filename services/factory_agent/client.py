"""The factory API, as the agent calls it: ``/factory/jobs`` over HTTP with a factory key.

Errors (every non-2xx answer carries ``{"error": {"code", "message", "details"}}``):

FactoryApiError(status, code, message, details)
├── ApiUnavailable  transient: connection errors, timeouts, 5xx (503 database_unavailable), 429; retry with
│                   backoff, honouring ``retry_after`` (from Retry-After)
├── JobLost         final for the job: 409 lease_lost (details.reason: superseded, expired, unknown_token,
│                   job_cancelled, job_finished), job_not_claimed, completion_conflict; 404 for the job.
│                   Stop working on it; never retry.
└── ApiRejected     permanent: any other 4xx (a wrong key, a request the server refuses, 416 for a range,
                    404 printer_not_found: the agent's printer is not its site's)
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from services.printing.schemas import (
    ClaimedJobOut,
    ClaimIn,
    CompleteIn,
    FactoryJobOut,
    FactoryJobPageOut,
    FailIn,
    HeartbeatIn,
    HeartbeatOut,
)

M = TypeVar("M", bound=BaseModel)
# A long-poll claim may take wait_seconds before the server even starts answering.
CLAIM_MARGIN_S = 15.0
_FINAL_CONFLICTS = {"lease_lost", "job_not_claimed", "completion_conflict"}


class FactoryApiError(Exception):
    def __init__(self, status: int | None, code: str, message: str, details: object = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status  # None when no answer came
        self.code = code
        self.message = message
        self.details = details


class ApiUnavailable(FactoryApiError):
    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        details: object = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, code, message, details)
        self.retry_after = retry_after


class JobLost(FactoryApiError):
    @property
    def reason(self) -> str:
        """``details.reason`` of a lease_lost (superseded, expired, ...), else the code."""
        if isinstance(self.details, dict) and isinstance(self.details.get("reason"), str):
            return str(self.details["reason"])
        return self.code


class ApiRejected(FactoryApiError):
    pass


@dataclass(frozen=True, slots=True)
class ArtifactStream:
    """An artifact download under way: its bytes from ``start`` on (``start`` > 0 only for a 206)."""

    start: int
    chunks: AsyncIterator[bytes]


class FactoryApiClient:
    """One factory key's calls to the API at ``base_url`` (``Authorization: Bearer <key>``)."""

    def __init__(self, base_url: str, key: str, *, timeout: float = 30.0) -> None:
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
        )

    async def claim(self, request: ClaimIn) -> ClaimedJobOut | None:
        """Lease a ready job, waiting up to ``request.wait_seconds`` for one; None when none came."""
        read_timeout = self._timeout + request.wait_seconds + CLAIM_MARGIN_S
        response = await self._send(
            self._http.build_request(
                "POST",
                "/factory/jobs/claim",
                json=request.model_dump(mode="json"),
                timeout=httpx.Timeout(self._timeout, read=read_timeout),
            )
        )
        if response.status_code == httpx.codes.NO_CONTENT:
            return None
        return _model(ClaimedJobOut, response)

    async def job(self, job_id: uuid.UUID) -> FactoryJobOut:
        return _model(
            FactoryJobOut, await self._send(self._http.build_request("GET", f"/factory/jobs/{job_id}"))
        )

    async def jobs(self) -> FactoryJobPageOut:
        """The site's ready, claimed and printing jobs."""
        return _model(FactoryJobPageOut, await self._send(self._http.build_request("GET", "/factory/jobs")))

    async def heartbeat(self, job_id: uuid.UUID, request: HeartbeatIn) -> HeartbeatOut:
        return _model(HeartbeatOut, await self._post(f"/factory/jobs/{job_id}/heartbeat", request))

    async def complete(self, job_id: uuid.UUID, request: CompleteIn) -> FactoryJobOut:
        """Idempotent: the same token and body again answer the same."""
        return _model(FactoryJobOut, await self._post(f"/factory/jobs/{job_id}/complete", request))

    async def fail(self, job_id: uuid.UUID, request: FailIn) -> FactoryJobOut:
        return _model(FactoryJobOut, await self._post(f"/factory/jobs/{job_id}/fail", request))

    @asynccontextmanager
    async def artifact(
        self, url: str, *, offset: int = 0, etag: str | None = None
    ) -> AsyncIterator[ArtifactStream]:
        """Stream an artifact (``url`` as the API gave it, relative to the base URL) from byte ``offset``.

        A connection that breaks off while the body is read raises ApiUnavailable out of the ``async with``.

        With ``offset`` and ``etag``, asks for the rest only if the artifact is still that one (``If-Range``);
        the server may answer with the whole of it instead (``start`` 0).

        Raises:
            ApiRejected: 416 when ``offset`` is past the end; other refusals.
            ApiUnavailable: the download could not start or broke off (from the iterator).
        """
        headers = {}
        if offset > 0:
            headers["Range"] = f"bytes={offset}-"
            if etag is not None:
                headers["If-Range"] = etag
        try:
            async with self._http.stream("GET", url, headers=headers) as response:
                if response.status_code >= 400:
                    await response.aread()
                    _raise_for(response)
                start = offset if response.status_code == httpx.codes.PARTIAL_CONTENT else 0
                yield ArtifactStream(start=start, chunks=response.aiter_bytes())
        except httpx.TransportError as exc:
            raise ApiUnavailable(None, "connection_failed", f"GET {url}: {exc!r}") from exc

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, body: BaseModel) -> httpx.Response:
        return await self._send(self._http.build_request("POST", path, json=body.model_dump(mode="json")))

    async def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self._http.send(request)
        except httpx.TransportError as exc:
            where = f"{request.method} {request.url.path}"
            raise ApiUnavailable(None, "connection_failed", f"{where}: {exc!r}") from exc
        if response.status_code >= 400:
            _raise_for(response)
        return response


def _model(model: type[M], response: httpx.Response) -> M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        # A proxy's error page or a half-deployed server: not ours to fix, and it may pass.
        raise ApiUnavailable(response.status_code, "unexpected_answer", str(exc)) from exc


def _raise_for(response: httpx.Response) -> None:
    status = response.status_code
    code, message, details = _error_of(response)
    if status >= 500 or status == httpx.codes.TOO_MANY_REQUESTS:
        raise ApiUnavailable(status, code, message, details, retry_after=_retry_after(response))
    if (status == httpx.codes.CONFLICT and code in _FINAL_CONFLICTS) or (
        status == httpx.codes.NOT_FOUND and code == "print_job_not_found"
    ):
        raise JobLost(status, code, message, details)
    raise ApiRejected(status, code, message, details)


def _error_of(response: httpx.Response) -> tuple[str, str, object]:
    try:
        body = response.json()
        error = body["error"]
        return str(error["code"]), str(error.get("message", "")), error.get("details")
    except (ValueError, KeyError, TypeError):
        return f"http_{response.status_code}", response.text[:200], None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare enough that our own backoff will do
