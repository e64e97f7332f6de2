"""Route modules. Each endpoint parses, calls one service and returns."""

from __future__ import annotations

from typing import Any

from services.api.schemas import ErrorResponse

_DESCRIPTIONS = {
    400: "Malformed request",
    401: "No or unknown API key",
    403: "The key's role may not call this endpoint",
    404: "Not found (also for objects of another organization)",
    409: "Conflict with existing state",
    413: "Payload too large",
    415: "Unsupported media type or model format",
    416: "The requested byte range lies outside the file",
    422: "Invalid input",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer, all in the one error shape."""
    return {
        status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
        for status in (401, 403, *statuses)
    }
