"""Every error leaves the API as ``{"error": {"code", "message", "details"}}``; no traceback ever does."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from parts_catalog.errors import CatalogError
from parts_catalog.formats import ModelFileError
from services.db import CONNECTION_ERRORS
from services.errors import DomainError, status_for

log = logging.getLogger(__name__)

_CODE_BY_STATUS = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_body(code: str, message: str, details: object = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _render(status: int, code: str, message: str, details: object = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status)


def domain_response(exc: DomainError) -> JSONResponse:
    response = _render(exc.status, exc.code, exc.message, exc.details)
    response.headers.update(getattr(exc, "headers", None) or {})
    return response


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return domain_response(exc)


async def _library_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CatalogError | ModelFileError)
    return _render(status_for(exc), exc.code, str(exc), exc.details or None)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only location, message and type: pydantic's "input" and "ctx" can echo huge or binary input back.
    details = [
        {"loc": list(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return _render(422, "validation_error", "the request is not valid", details)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path. Starlette's 405 names only the methods of the first
    route whose path matched, and each FastAPI route has one method: `OPTIONS /parts` said `Allow: POST`
    although `GET /parts` exists (RFC 9110 15.5.6: Allow lists the methods the resource supports)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, BaseRoute) and route.matches(request.scope)[0] is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODE_BY_STATUS.get(exc.status_code, "http_error")
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers)


# SQLSTATE classes in which the database, not the request, failed: connection exceptions (08), operator
# intervention shutting a server down or not yet accepting (57P01-57P03), insufficient resources (53:
# too many connections, out of memory or disk) and a transaction the server rolled back (40: a deadlock or
# a serialization failure; nothing was committed, and the same request can succeed when retried).
_UNAVAILABLE_SQLSTATES = ("08", "57P", "53", "40")


def _database_went_away(exc: sa_exc.DBAPIError) -> bool:
    """A connection that died under a request (pg_terminate_backend, a restart, a failover) reaches us as a
    bare ``DBAPIError``: asyncpg's ``ConnectionDoesNotExistError`` and ``AdminShutdownError`` are
    ``PostgresError``s, which SQLAlchemy's asyncpg dialect translates to its generic ``Error``."""
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    return exc.connection_invalidated or sqlstate.startswith(_UNAVAILABLE_SQLSTATES)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, sa_exc.DBAPIError)
    if _database_went_away(exc):
        return await _database_unavailable(request, exc)
    return await _unexpected(request, exc)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Pool exhausted, connection lost, SQLite busy past its timeout: the client may retry (with the same
    # Idempotency-Key where it sent one). A connection lost during the commit leaves the outcome unknown
    # (the commit may have gone through); the retry with the same key replays the answer or does it once.
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    response = _render(503, "database_unavailable", "the database is busy or unreachable; retry shortly")
    response.headers["Retry-After"] = "1"
    return response


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _render(500, "internal_error", "internal error; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(CatalogError, _library_error)
    app.add_exception_handler(ModelFileError, _library_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for database_error in (
        sa_exc.TimeoutError,
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        *CONNECTION_ERRORS,
    ):
        app.add_exception_handler(database_error, _database_unavailable)
    # Any other driver error: 503 when the connection went away under the request, else 500.
    app.add_exception_handler(sa_exc.DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
