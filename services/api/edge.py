"""The API's edge: what every request must be before any route, dependency or parser sees it.

A pure ASGI middleware, so that it runs before FastAPI reads and parses a body (FastAPI does that before
running any dependency, authentication included). In this order:

1. Headers the API reads must come once (``SINGLE_HEADERS``; 400 ``duplicate_header``) and hold no control
   character (422 ``validation_error``, ``type`` ``control_character``, as ``services.validation`` words it).
2. On routes that take an API key, a missing, malformed or unknown key is refused (401) before the body is
   read: an anonymous client cannot make the API read or parse anything.
3. The decoded path and every query parameter hold no control character either (422, as in 1).
4. On routes whose JSON body FastAPI parses, the body is read up to ``max_json_body_bytes`` (the declared
   Content-Length first, then counted while it streams; 413 ``payload_too_large``) and decoded once with
   the strict decoder (422 ``validation_error``: ``json_invalid``, ``json_too_deep``,
   ``number_out_of_range``, ``control_character``); the route then reads the bytes that passed. Routes that
   read their own body stream cap it themselves, as it streams: model uploads (``max_upload_bytes``,
   ``services.api.uploads``) and signed webhooks (``webhook_max_body_bytes``, whose signature covers the raw
   bytes; they decode with the same strict decoder once the signature holds).

Requests for a method and path no operation takes go straight to the router (404, 405): nothing reads them.

``document`` writes the same rules into the OpenAPI document, so that what the edge refuses is what the
document says is refused: the character rule as patterns, and the 422 and 413 on every operation they can
come from.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email.message import Message as MimeMessage
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security.base import SecurityBase
from sqlalchemy.exc import SQLAlchemyError
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.accounts.service import AccountsService, Principal
from services.api.errors import domain_response
from services.db import CONNECTION_ERRORS
from services.errors import DomainError, InvalidRequest, MalformedRequest, NotAuthenticated, PayloadTooLarge
from services.validation import (
    MULTILINE_FIELDS,
    MULTILINE_PATTERN,
    SINGLE_LINE_PATTERN,
    InputRefused,
    check_text,
    loads,
)

log = logging.getLogger(__name__)

# Headers the API reads whose repetition has no meaning: which of two Idempotency-Keys or signatures would
# count is a guess no client should be able to make us take.
SINGLE_HEADERS = frozenset(
    {
        "authorization",
        "content-length",
        "content-type",
        "idempotency-key",
        "x-request-id",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-event-id",
    }
)
NO_KEY = "send an API key as `Authorization: Bearer <key>`"
UNKNOWN_KEY = "unknown or revoked API key"
_DATABASE_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError, *CONNECTION_ERRORS)
# Where the edge leaves the caller it authenticated (``scope["state"]``), for ``services.api.deps``.
PRINCIPAL = "principal"


def invalid(refused: InputRefused) -> InvalidRequest:
    """A refusal as the API words every invalid input: 422 ``validation_error`` with pydantic-like details."""
    return InvalidRequest("the request is not valid", code="validation_error", details=[refused.detail()])


@dataclass(frozen=True, slots=True)
class _Rules:
    authenticated: bool
    json_body: bool


@dataclass(frozen=True, slots=True)
class _Operation:
    methods: frozenset[str]
    path: re.Pattern[str]
    rules: _Rules


def _takes_api_key(dependant: Dependant) -> bool:
    return isinstance(dependant.call, SecurityBase) or any(_takes_api_key(d) for d in dependant.dependencies)


class _ClientGone(Exception):
    """The client disconnected while its body was read: there is no one to answer."""


class EdgeGuard:
    def __init__(self, app: ASGIApp, *, max_json_body_bytes: int) -> None:
        self.app = app
        self.max_json_body_bytes = max_json_body_bytes
        self._operations: list[_Operation] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rules = self._rules_for(scope)
        if rules is None:
            # No operation takes this method and path: the router answers 404 or 405, reading nothing.
            await self.app(scope, receive, send)
            return
        try:
            headers = _single_headers(scope)
            # The key before the target, as FastAPI orders it: an anonymous client is told 401, whatever
            # else is wrong with its request.
            if rules.authenticated:
                await _authenticate(scope, headers.get("authorization", ""))
            _check_target(scope)
            if rules.json_body:
                receive = await self._read_json(receive, headers)
        except DomainError as refusal:
            await domain_response(refusal)(scope, receive, send)
            return
        except _ClientGone:
            return
        await self.app(scope, receive, send)

    def _rules_for(self, scope: Scope) -> _Rules | None:
        """The rules of the operation the request is for; ``None`` when no operation takes it."""
        if self._operations is None:  # on the first request: every router is included by then
            self._operations = _operations(scope["app"])
        for operation in self._operations:
            if scope["method"] in operation.methods and operation.path.fullmatch(scope["path"]):
                return operation.rules
        return None

    async def _read_json(self, receive: Receive, headers: dict[str, str]) -> Receive:
        limit = self.max_json_body_bytes
        too_large = PayloadTooLarge(f"JSON bodies are limited to {limit} bytes", details={"limit": limit})
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise too_large
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            body += message.get("body", b"")
            if len(body) > limit:
                raise too_large
            more = message.get("more_body", False)
        if body and _is_json(headers.get("content-type")):
            try:
                loads(bytes(body))
            except InputRefused as refused:
                raise invalid(refused) from None
        return _replay(bytes(body), receive)


def _operations(app: FastAPI) -> list[_Operation]:
    """Every API route with its full path (included routers' prefixes too) and what the edge checks on it."""
    operations = []
    for context in iter_route_contexts(app.router.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.path_format is not None:
            rules = _Rules(_takes_api_key(route.dependant), route.body_field is not None)
            regex, _, _ = compile_path(context.path_format)
            operations.append(_Operation(frozenset(context.methods or ()), regex, rules))
    return operations


def _single_headers(scope: Scope) -> dict[str, str]:
    seen: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        if name not in SINGLE_HEADERS:
            continue
        if name in seen:
            raise MalformedRequest(
                f"the {name} header may be sent once", code="duplicate_header", details={"header": name}
            )
        value = raw_value.decode("latin-1")
        try:
            # A key is only ever compared with the key format (anything else is 401, as clients expect).
            if name != "authorization":
                check_text(value, ("header", name))
        except InputRefused as refused:
            raise invalid(refused) from None
        seen[name] = value
    return seen


def _check_target(scope: Scope) -> None:
    try:
        check_text(scope["path"], ("path",))
        for name, value in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True):
            check_text(name, ("query", name))
            check_text(value, ("query", name))
    except InputRefused as refused:
        raise invalid(refused) from None


async def _authenticate(scope: Scope, authorization: str) -> None:
    """Refuse a request without a well-formed, known key. A key the database cannot be asked about now is
    left to the route's own authentication, which answers 503 as every route does when the database is
    away."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated(NO_KEY)
    resources = scope["app"].state.resources
    try:
        async with resources.sessions() as session:
            principal: Principal | None = await AccountsService(session).authenticate(token)
    except _DATABASE_ERRORS:
        log.warning("could not look up an API key at the edge", exc_info=True)
        return
    if principal is None:
        raise NotAuthenticated(UNKNOWN_KEY, code="invalid_api_key")
    scope.setdefault("state", {})[PRINCIPAL] = principal


def _is_json(content_type: str | None) -> bool:
    # What FastAPI parses as JSON (strict content type): application/json and application/*+json.
    if not content_type:
        return False
    mime = MimeMessage()
    mime["content-type"] = content_type
    subtype = mime.get_content_subtype()
    return mime.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # a disconnect, as the server reports it
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


# --- the OpenAPI document ----------------------------------------------------------------------------------

# Formats whose values the API parses into a type (and refuses otherwise); other strings are free text.
_TYPED_FORMATS = frozenset({"uuid", "date-time", "date", "time", "duration", "binary"})
_NOT_SCHEMAS = frozenset({"example", "examples", "default", "const", "enum", "description"})


def document(openapi: dict[str, Any]) -> dict[str, Any]:
    """States the edge's character rule, as a pattern, on every free-text string a request can carry
    (parameters and bodies) that has no pattern of its own; ``tests/e2e/test_hostile_input.py`` checks
    that the patterns already there are as strict."""
    schemas = openapi.get("components", {}).get("schemas", {})
    seen: set[str] = set()

    def walk(node: Any, multiline: bool) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, multiline)
        if not isinstance(node, dict):
            return
        ref = node.get("$ref", "")
        if ref.startswith("#/components/schemas/") and ref not in seen:
            seen.add(ref)
            walk(schemas[ref.rsplit("/", 1)[1]], False)
        free = node.get("type") == "string" and node.get("format") not in _TYPED_FORMATS
        if free and not {"enum", "const", "pattern"} & node.keys():
            node["pattern"] = MULTILINE_PATTERN if multiline else SINGLE_LINE_PATTERN
        for key, value in node.items():
            if key == "properties":
                for name, prop in value.items():
                    walk(prop, name in MULTILINE_FIELDS)
            elif key not in _NOT_SCHEMAS:
                walk(value, multiline)

    for item in openapi.get("paths", {}).values():
        for operation in item.values():
            walk(operation.get("parameters", []), False)
            walk(operation.get("requestBody", {}), False)
            _document_refusals(operation)
    return openapi


_ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}


def _document_refusals(operation: dict[str, Any]) -> None:
    """The answers the edge gives on any operation: 422 for a control character in the path or in any query
    parameter (declared or not); 413 for a JSON body past the cap."""
    responses = operation.setdefault("responses", {})
    responses.setdefault("422", {"description": "Invalid input", "content": _ERROR_BODY})
    if "application/json" in operation.get("requestBody", {}).get("content", {}):
        responses.setdefault("413", {"description": "Payload too large", "content": _ERROR_BODY})
