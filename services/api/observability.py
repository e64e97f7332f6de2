"""Per request: a request id, a log context, an access log line and the HTTP metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid

from fastapi import Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.observability.logs import bind, log_context
from services.observability.metrics import HTTP_REQUESTS, HTTP_SECONDS

log = logging.getLogger("services.api.access")

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept when it is plausible as one (a load balancer's or a client's trace id); anything
# else is replaced, so that logs never carry arbitrary client text under this name.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestObservation:
    """Pure ASGI (not BaseHTTPMiddleware): the endpoint runs in this task, so ids it binds reach the access
    line, and streamed responses (labels, G-code) are not buffered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
                HTTP_SECONDS.labels(scope["method"], _route(scope)).observe(time.perf_counter() - started)
            await send(message)

        with log_context(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = _route(scope)
                HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
                log.info(
                    "%s %s %d",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )


def _route(scope: Scope) -> str:
    # The template (/orders/{order_id}, converters dropped), never the path: one series per route.
    route = scope.get("route")
    return str(getattr(route, "path_format", "unmatched"))


async def bind_path_ids(request: Request) -> None:
    """An app-wide dependency: ids in the path (order_id, part_id, ...) join the request's log context."""
    bind(**{name: value for name, value in request.path_params.items() if name.endswith("_id")})
