"""The input rules of ``services.validation`` and proof that they cover every request the API takes: the
strict JSON decoder, every request datetime an aware-UTC one, every free-text request string in the OpenAPI
document refusing what the edge refuses."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from typing import Annotated, Any, get_args, get_origin

import pytest
from fastapi._compat import ModelField
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime, BaseModel

from services.api.app import create_app
from services.config import Settings
from services.couriers.providers.karrio.mapping import KarrioShipment, KarrioTracker, _Event
from services.validation import MAX_DEPTH, MULTILINE_FIELDS, InputRefused, UtcDatetime, loads
from services.webhooks.inbound.service import PartnerEvent


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b'{"a": NaN}', "number_out_of_range"),
        (b'{"a": Infinity}', "number_out_of_range"),
        (b'{"a": -Infinity}', "number_out_of_range"),
        (b'{"a": 1e309}', "number_out_of_range"),
        (b'{"a": -1e309}', "number_out_of_range"),
        (b'{"a": ' + b"1" * 5000 + b"}", "number_out_of_range"),
        (b'{"a": 9223372036854775808}', "number_out_of_range"),
        (b"[" * 100_000 + b"]" * 100_000, "json_too_deep"),
        (b"[" * (MAX_DEPTH + 2) + b"]" * (MAX_DEPTH + 2), "json_too_deep"),
        (b'{"a": "x\\u0000y"}', "control_character"),
        (b'{"a\\u0000": 1}', "control_character"),
        (b'{"a": ["\\u001b[31m"]}', "control_character"),
        (b'{"a": "\\u0085"}', "control_character"),
        (b'{"a": "\\ud800"}', "control_character"),
        (b'{"name": "two\\nlines"}', "control_character"),
        (b'{"name": "tab\\there"}', "control_character"),
        (b'{"description": "bell\\u0007"}', "control_character"),
        (b"{not json", "json_invalid"),
        (b"\xff", "json_invalid"),
    ],
)
def test_the_decoder_refuses(body: bytes, kind: str) -> None:
    with pytest.raises(InputRefused) as refused:
        loads(body)
    assert refused.value.kind == kind
    assert refused.value.loc[0] == "body"


def test_the_decoder_takes_ordinary_json_and_line_breaks_in_free_text() -> None:
    body = (
        b'{"description": "two\\nlines\\tand a tab", "n": [1, -2.5e3, 9223372036854775807], "ok": "\\u00e9"}'
    )
    assert loads(body) == {
        "description": "two\nlines\tand a tab",
        "n": [1, -2500.0, 2**63 - 1],
        "ok": "\u00e9",
    }
    assert set(MULTILINE_FIELDS) >= {"description", "reason", "notes"}


# --- every request datetime is a UtcDatetime ----------------------------------------------------------------

_TO_UTC = get_args(UtcDatetime)[1]
# Models the routes read themselves, after a signature check (FastAPI does not see them).
_READ_BY_WEBHOOKS: tuple[type[BaseModel], ...] = (PartnerEvent, _Event, KarrioTracker, KarrioShipment)


def _bare_datetimes(annotation: Any, metadata: list[Any], where: str, found: list[str]) -> None:
    if get_origin(annotation) is Annotated:
        base, *extra = get_args(annotation)
        _bare_datetimes(base, [*metadata, *extra], where, found)
    elif annotation is AwareDatetime or (isinstance(annotation, type) and issubclass(annotation, datetime)):
        if _TO_UTC not in metadata:
            found.append(where)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, info in annotation.model_fields.items():
            _bare_datetimes(info.annotation, list(info.metadata), f"{annotation.__name__}.{name}", found)
    else:
        for arg in get_args(annotation):
            _bare_datetimes(arg, [], where, found)


def _params(dependant: Dependant) -> Iterator[ModelField]:
    yield from (*dependant.path_params, *dependant.query_params, *dependant.header_params)
    yield from dependant.body_params
    for sub in dependant.dependencies:
        yield from _params(sub)


def test_every_request_datetime_is_converted_to_utc_on_the_way_in() -> None:
    """A bare ``datetime`` or ``AwareDatetime`` in anything a request carries (bodies, parameters, the
    webhook models) would let 9999-12-31T23:59:59-05:00 through to the first conversion: a 500."""
    found: list[str] = []
    app = create_app(Settings())
    fields = 0
    for context in iter_route_contexts(app.router.routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        for param in _params(route.dependant):
            fields += 1
            info = param.field_info
            _bare_datetimes(info.annotation, list(info.metadata), f"{route.path} {param.name}", found)
    for model in _READ_BY_WEBHOOKS:
        _bare_datetimes(model, [], model.__name__, found)
    assert fields > 50
    assert found == []


def test_the_walk_finds_a_bare_datetime() -> None:
    class Sneaky(BaseModel):
        at: datetime | None

    found: list[str] = []
    _bare_datetimes(Sneaky, [], "Sneaky", found)
    assert found == ["Sneaky.at"]


# --- the OpenAPI document states the character rule on every free-text request string ----------------------

_TYPED_FORMATS = {"uuid", "date-time", "date", "time", "duration", "binary"}
_ALWAYS_REFUSED = ("\x00", "\x08", "\x1b", "\x7f", "\x85", "\x9b")


@cache
def _request_strings() -> list[tuple[str, str | None, bool]]:
    """(where, pattern, multiline) of every free-text string in the document's parameters and bodies."""
    openapi = create_app(Settings()).openapi()
    schemas = openapi["components"]["schemas"]
    found: list[tuple[str, str | None, bool]] = []

    def walk(node: Any, where: str, multiline: bool) -> None:
        if isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{where}[{index}]", multiline)
            return
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            walk(schemas[node["$ref"].rsplit("/", 1)[1]], where, False)
        free = node.get("type") == "string" and node.get("format") not in _TYPED_FORMATS
        if free and not {"enum", "const"} & node.keys():
            found.append((where, node.get("pattern"), multiline))
        for name, prop in node.get("properties", {}).items():
            walk(prop, f"{where}.{name}", name in MULTILINE_FIELDS)
        for key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf"):
            walk(node.get(key), where, multiline)

    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                walk(parameter["schema"], f"{method.upper()} {path} {parameter['name']}", False)
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                walk(content.get("schema"), f"{method.upper()} {path} {media}", False)
    return found


def test_every_free_text_request_string_has_a_pattern() -> None:
    strings = _request_strings()
    assert len(strings) > 80
    assert [where for where, pattern, _ in strings if pattern is None] == []


@pytest.mark.parametrize(
    ("pattern", "multiline"),
    sorted({(pattern or "", multiline) for _, pattern, multiline in _request_strings()}),
)
@settings(max_examples=25, derandomize=True, deadline=None)
@given(data=st.data())
def test_every_request_pattern_refuses_control_characters(
    pattern: str, multiline: bool, data: st.DataObject
) -> None:
    """Whatever a pattern accepts, with a control character put anywhere in it, it refuses (tabs and line
    breaks too, but in the free text of ``MULTILINE_FIELDS``): the document refuses what the edge does."""
    accepted = data.draw(st.from_regex(pattern, fullmatch=True))
    forbidden = _ALWAYS_REFUSED if multiline else (*_ALWAYS_REFUSED, "\n", "\t", "\r")
    char = data.draw(st.sampled_from(forbidden))
    at = data.draw(st.integers(0, len(accepted)))
    assert re.fullmatch(pattern, accepted[:at] + char + accepted[at:]) is None
