"""Catalog errors. Each has a stable machine-readable ``code`` and a ``kind`` the platform maps to a status.

CatalogError
├── PartNotFound          (not_found)   also raised for parts of another organization
├── RevisionNotFound      (not_found)
├── PartNumberTaken       (conflict)
├── RevisionNotReady      (conflict)    its geometry check has not finished
├── NotPrintable          (invalid)     no revision passed the geometry check
└── InvalidCursor         (invalid)

Problems with an uploaded file itself are ``parts_catalog.formats.ModelFileError``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class ErrorKind(StrEnum):
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    INVALID = "invalid"
    UNSUPPORTED = "unsupported"


class CatalogError(Exception):
    code: ClassVar[str] = "catalog_error"
    kind: ClassVar[ErrorKind] = ErrorKind.INVALID

    def __init__(self, message: str, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class PartNotFound(CatalogError):
    code = "part_not_found"
    kind = ErrorKind.NOT_FOUND


class RevisionNotFound(CatalogError):
    code = "revision_not_found"
    kind = ErrorKind.NOT_FOUND


class PartNumberTaken(CatalogError):
    code = "part_number_taken"
    kind = ErrorKind.CONFLICT


class RevisionNotReady(CatalogError):
    code = "revision_not_ready"
    kind = ErrorKind.CONFLICT


class NotPrintable(CatalogError):
    code = "not_printable"
    kind = ErrorKind.INVALID


class InvalidCursor(CatalogError):
    code = "invalid_cursor"
    kind = ErrorKind.INVALID
