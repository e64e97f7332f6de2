"""Every error leaves the API as ``{"error": {"code", "message", "details"}}``; no traceback ever does."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from parts_catalog.errors import CatalogError
from parts_catalog.formats import ModelFileError
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


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    response = _render(exc.status, exc.code, exc.message, exc.details)
    response.headers.update(getattr(exc, "headers", None) or {})
    return response


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


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODE_BY_STATUS.get(exc.status_code, "http_error")
    return JSONResponse(
        error_body(code, str(exc.detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Pool exhausted, connection lost, SQLite busy past its timeout: nothing was committed, so the client
    # may simply retry (with the same Idempotency-Key where it sent one).
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
    for database_error in (sa_exc.TimeoutError, sa_exc.OperationalError, sa_exc.InterfaceError):
        app.add_exception_handler(database_error, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)
