"""The platform's error base and the one place an HTTP status is attached to an error.

DomainError(code, message, status, details)
├── NotAuthenticated      401 not_authenticated
├── Forbidden             403 forbidden
├── NotFound              404 not_found / <entity>_not_found
├── Conflict              409 <what>_taken / conflict
├── InvalidRequest        422 <what>
├── PayloadTooLarge       413 payload_too_large
├── UnsupportedMediaType  415 unsupported_media_type
├── MalformedRequest      400 malformed_multipart / ...
└── Unavailable           503 not_ready / ...

Library errors (parts_catalog.errors.CatalogError, parts_catalog.formats.ModelFileError) carry a code
and a kind; ``status_for`` maps them here.
"""

from __future__ import annotations

from parts_catalog.errors import CatalogError, ErrorKind
from parts_catalog.formats import ModelFileError, UnsupportedModelFormat


class DomainError(Exception):
    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: object = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class NotAuthenticated(DomainError):
    status = 401
    code = "not_authenticated"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class InvalidRequest(DomainError):
    status = 422
    code = "invalid_request"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"


class MalformedRequest(DomainError):
    status = 400
    code = "malformed_request"


class Unavailable(DomainError):
    status = 503
    code = "unavailable"


_STATUS_BY_KIND = {
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.INVALID: 422,
    ErrorKind.UNSUPPORTED: 415,
}


def status_for(exc: CatalogError | ModelFileError) -> int:
    if isinstance(exc, CatalogError):
        return _STATUS_BY_KIND[exc.kind]
    return 415 if isinstance(exc, UnsupportedModelFormat) else 422
