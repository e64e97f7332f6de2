"""One HTTP attempt of one webhook: check the target, POST the signed body, classify the answer.

The connection goes to an address ``ssrf.check_target`` has just checked, with the URL's host in the
``Host`` header and as the TLS server name (so certificates are verified against the name, not the
address): a second DNS resolution by the HTTP client could otherwise answer differently (DNS rebinding).
Hence also one client per attempt: a pooled connection to an address, established for one name, must never
carry a request for another. Redirects are not followed (a 3xx is a failed attempt: the endpoint should
name its final URL); the response body is never read; the whole attempt, DNS included, has one time limit.
No exception leaves ``attempt``: every outcome is an ``AttemptResult``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime

import httpx

from services.signing import sign
from services.webhooks.outbound import ssrf

log = logging.getLogger(__name__)

USER_AGENT = "Spareflow-Webhooks/1"
MAX_ERROR = 300


@dataclass(frozen=True, slots=True)
class AttemptRequest:
    url: str
    msg_id: str
    body: bytes
    secrets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AttemptResult:
    ok: bool
    status_code: int | None
    error: str | None  # why it failed, short; None when it succeeded
    duration_ms: int


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 3] + "..."


async def attempt(
    request: AttemptRequest,
    *,
    now: datetime,
    timeout_s: float,
    allow_private: bool,
    resolve: ssrf.Resolver = ssrf.system_resolve,
) -> AttemptResult:
    """POST ``request`` once, signed at ``now`` (``webhook-timestamp`` is the attempt's time, the body's
    ``timestamp`` the event's: a retry hours later still verifies within the receivers' tolerance)."""
    started = time.monotonic()

    def result(status_code: int | None, error: str | None) -> AttemptResult:
        elapsed = int((time.monotonic() - started) * 1000)
        return AttemptResult(
            ok=error is None,
            status_code=status_code,
            error=_short(error) if error else None,
            duration_ms=elapsed,
        )

    try:
        async with asyncio.timeout(timeout_s):
            target = await ssrf.check_target(
                request.url, allow_private=allow_private, resolve=resolve, timeout_s=timeout_s
            )
            response = await _post(target, request, now=now, timeout_s=timeout_s)
    except (ssrf.WebhookTargetForbidden, ssrf.InvalidWebhookUrl) as exc:
        return result(None, f"{exc.code}: {exc.message}")
    except TimeoutError:
        return result(None, f"timeout: no answer within {timeout_s:g} s")
    except httpx.HTTPError as exc:
        return result(None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    except Exception as exc:
        # A bug must still count as a failed attempt: a delivery whose job crashed would otherwise be
        # claimed again and again without ever reaching the retry limit or disabling the endpoint.
        log.exception("webhook attempt to %s crashed", request.url)
        return result(None, f"internal error: {type(exc).__name__}")
    if 200 <= response.status_code < 300:
        return result(response.status_code, None)
    if response.is_redirect:
        location = response.headers.get("location", "")
        return result(response.status_code, f"redirect to {location!r} not followed")
    return result(response.status_code, f"HTTP {response.status_code}")


async def _post(
    target: ssrf.Target, request: AttemptRequest, *, now: datetime, timeout_s: float
) -> httpx.Response:
    headers = {
        **sign(request.secrets, request.msg_id, now, request.body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "host": target.url.netloc.decode("ascii"),
    }
    extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
    # trust_env=False: no proxy from the environment gets to carry customers' webhooks elsewhere.
    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False) as client:
        for index, address in enumerate(target.addresses):
            pinned = target.url.copy_with(host=str(address))
            try:
                async with client.stream(
                    "POST", pinned, content=request.body, headers=headers, extensions=extensions
                ) as response:
                    return response
            except httpx.ConnectError:
                # Nothing was sent: the next address (IPv4 after IPv6, say) may answer.
                if index == len(target.addresses) - 1:
                    raise
    raise AssertionError("check_target returns at least one address")
