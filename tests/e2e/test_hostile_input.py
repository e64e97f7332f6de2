"""No input reaches a 500: every operation of the OpenAPI document, as every role that may call it and as no
one, gets each class of hostile input in its path, its query, its headers and its JSON body, and answers a
4xx in the one error shape, never a 5xx and never a dropped connection.

The classes (issue 14): control characters and NUL; NaN, Infinity, 1e309 and integers thousands of digits
long; JSON nested thousands deep; bodies past the cap; a header that must be single sent twice; datetimes
that overflow when converted to UTC. The signed webhook routes get them with valid signatures (and Karrio's
with its secret), so the bodies reach the decoder behind the signature check.

The app is served on a loopback port (a real HTTP server: a crashed handler shows as a dropped connection,
not as an exception in the test). The counts are printed under "chaos and fuzz counts" (tests/tally.py).
"""

from __future__ import annotations

import json
import re
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from parts_catalog.sqltypes import utcnow
from services.api.background import serve_in_background
from services.api.idempotency import HEADER
from services.config import Settings
from services.couriers.registry import KARRIO_PARTNER
from services.signing import sign
from tests import tally
from tests.builders import (
    HAMBURG,
    bearer,
    make_account,
    make_admin_token,
    make_key,
    make_shop,
    make_site,
    order_body,
)
from tests.e2e.test_cross_tenant import Route, routes
from tests.e2e.test_errors import assert_error_shape
from tests.tally import Tally

pytestmark = pytest.mark.parametrize("migrated_url", ["postgresql"], indirect=True)

JSON_CAP = 64 * 1024
WEBHOOK_CAP = 4096
OVERFLOWING_DATES = ("9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00")
CONTROL = ("a\x00b", "a\x1bb", "a\x7fb", "a\x85b", "a\nb")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"max_json_body_bytes": JSON_CAP, "webhook_max_body_bytes": WEBHOOK_CAP}
    )


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[str]:
    async with serve_in_background(settings, settings.redis_url) as base_url:
        yield base_url


@dataclass(frozen=True)
class Callers:
    tokens: dict[str, str]  # role -> API key
    partner: str  # a partner's slug, with a webhook secret
    partner_secret: str
    karrio_secret: str


async def make_callers(client: httpx.AsyncClient, settings: Settings) -> Callers:
    admin = await make_admin_token(settings)
    org = await make_account(client, admin, "organizations")
    site = await make_site(client, admin)
    partner = await make_account(client, admin, "partners")
    karrio_partner = await make_account(client, admin, "partners", slug=KARRIO_PARTNER)
    issued = await client.post(f"/partners/{partner['id']}/webhook-secrets", json={}, headers=bearer(admin))
    karrio_secret = "karrio-secret-" + uuid.uuid4().hex
    given = await client.post(
        f"/partners/{karrio_partner['id']}/webhook-secrets",
        json={"secret": karrio_secret},
        headers=bearer(admin),
    )
    assert issued.status_code == given.status_code == 201, (issued.text, given.text)
    return Callers(
        tokens={
            "admin": admin,
            "technician": await make_key(client, admin, "technician", organization_id=org["id"]),
            "factory": await make_key(client, admin, "factory", site_id=site["id"]),
            "partner": await make_key(client, admin, "partner", partner_id=partner["id"]),
        },
        partner=partner["slug"],
        partner_secret=issued.json()["secret"],
        karrio_secret=karrio_secret,
    )


@dataclass(frozen=True)
class Probe:
    """One hostile request; ``refused``: it must be a 4xx (else it must merely not be a server error)."""

    kind: str
    url: str
    headers: list[tuple[str, str | bytes]] = field(default_factory=list)
    body: bytes | None = None
    refused: bool = True


def _plausible(name: str, callers: Callers) -> str:
    return {"partner": callers.partner, "kind": "gcode"}.get(name, str(uuid.uuid4()))


def _fill(path: str, callers: Callers, hostile: dict[str, str] | None = None) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        raw = (hostile or {}).get(name, _plausible(name, callers))
        return urllib.parse.quote(raw, safe="")

    return re.sub(r"\{(\w+)\}", value, path)


def _json_properties(route: Route, openapi: dict[str, Any]) -> list[str] | None:
    """The JSON body's top-level properties, or None when the operation takes no JSON body."""
    content = route.operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    schema = content["application/json"].get("schema", {})
    if "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return sorted(schema.get("properties", {})) or ["data"]


def _hostile_bodies(properties: list[str], cap: int) -> Iterator[tuple[str, bytes, bool]]:
    """(class, body, must be refused)."""
    for name in properties:
        for text in CONTROL:
            yield "body control character", json.dumps({name: text}).encode(), True
        for date in OVERFLOWING_DATES:
            # Refused here by the rest of the body; the date alone, in valid bodies, below.
            yield "body overflowing date", json.dumps({name: date}).encode(), False
    first = properties[0]
    yield "body control character in a key", b'{"a\\u0000": 1}', True
    yield "body lone surrogate", json.dumps({first: "\ud800"}).encode(), True
    for number in ("NaN", "Infinity", "-Infinity", "1e309", "-1e309", "1" + "0" * 5000, "9" * 20):
        yield "body number out of range", f'{{"{first}": {number}}}'.encode(), True
    yield "body nested deep", f'{{"{first}": {"[" * 50_000}{"]" * 50_000}}}'.encode(), True
    yield "body nested deep", f'{{"{first}": {"[" * 40}{"]" * 40}}}'.encode(), True
    yield "body too large", json.dumps({first: "x" * cap}).encode(), True


def probes(route: Route, openapi: dict[str, Any], callers: Callers, settings: Settings) -> Iterator[Probe]:
    for name in re.findall(r"\{(\w+)\}", route.path):
        for text in CONTROL:
            yield Probe("path control character", _fill(route.path, callers, {name: text}))
    url = _fill(route.path, callers)
    queries = [p["name"] for p in route.operation.get("parameters", []) if p["in"] == "query"] + ["x"]
    for name in queries:
        for text in CONTROL:
            yield Probe("query control character", f"{url}?{urllib.parse.urlencode({name: text})}")
        for number in ("NaN", "Infinity", "1e309", "9" * 5000):
            # A string parameter may take any of these; refused or not, never a server error.
            yield Probe("query number", f"{url}?{urllib.parse.urlencode({name: number})}", refused=False)
    for header in ("Idempotency-Key", "X-Request-ID"):
        twice: list[tuple[str, str | bytes]] = [(header, str(uuid.uuid4())), (header, str(uuid.uuid4()))]
        yield Probe("header repeated", url, twice, b"{}" if route.method != "GET" else None)
    yield Probe("header control character", url, [("X-Request-ID", b"a\x85b")], None)
    properties = _json_properties(route, openapi)
    if route.method == "GET" or properties is None:
        if route.operation.get("requestBody"):  # multipart upload: the cap only
            yield Probe("body too large", url, [("content-type", "application/octet-stream")], b"x" * 300_000)
        return
    webhook = route.roles is None and route.path.startswith("/webhooks/")
    cap = WEBHOOK_CAP if webhook else JSON_CAP
    for kind, body, refused in _hostile_bodies(properties, cap):
        headers: list[tuple[str, str | bytes]] = [("content-type", "application/json")]
        if route.path == "/webhooks/karrio":
            headers.append(("x-event-id", callers.karrio_secret))
        elif webhook:
            signed = sign([callers.partner_secret], f"msg_{uuid.uuid4().hex}", utcnow(), body)
            headers += list(signed.items())
        if "Idempotency-Key" in json.dumps(route.operation.get("parameters", [])):
            headers.append(("Idempotency-Key", str(uuid.uuid4())))
        yield Probe(kind, url, headers, body, refused)


@dataclass
class Verdicts:
    tally: Tally
    problems: list[str] = field(default_factory=list)
    by_class: dict[str, int] = field(default_factory=dict)

    def judge(self, request: str, probe: Probe, response: httpx.Response | None, error: str = "") -> None:
        self.tally.attempted += 1
        self.by_class[probe.kind] = self.by_class.get(probe.kind, 0) + 1
        if response is None:
            self.tally.figures["dropped"] = int(self.tally.figures["dropped"]) + 1
            self.problems.append(f"{request}: no answer ({error})")
            return
        status = response.status_code
        if status >= 500:
            self.tally.figures["server_errors"] = int(self.tally.figures["server_errors"]) + 1
        wrong = status >= 500 or (probe.refused and not 400 <= status < 500)
        if status >= 400 and not wrong:
            try:
                body = response.json()
                wrong = set(body) != {"error"} or set(body["error"]) != {"code", "message", "details"}
            except ValueError:
                wrong = True
        if wrong:
            self.problems.append(f"{request} -> {status}: {response.text[:200]}")
        else:
            self.tally.ok += 1


async def test_every_operation_answers_hostile_input_with_a_4xx(
    client: httpx.AsyncClient, settings: Settings, served: str
) -> None:
    callers = await make_callers(client, settings)
    openapi = (await client.get("/openapi.json")).json()
    verdicts = Verdicts(tally.record(Tally(scenario="hostile input: every operation, every role and none")))
    verdicts.tally.figures.update(server_errors=0, dropped=0, operations=0)
    async with httpx.AsyncClient(base_url=served, timeout=30) as http:
        for route in routes(openapi):
            verdicts.tally.figures["operations"] = int(verdicts.tally.figures["operations"]) + 1
            identities: list[tuple[str, dict[str, str]]] = [("anonymous", {})]
            identities += [
                (role, bearer(token)) for role, token in callers.tokens.items() if role in (route.roles or ())
            ]
            for who, auth in identities:
                for probe in probes(route, openapi, callers, settings):
                    request = f"[{who}] {route.method} {probe.url[:120]} ({probe.kind})"
                    headers = [*auth.items(), *probe.headers]
                    try:
                        # httpx encodes each header value, str or bytes, on its own; its annotation wants
                        # one kind for the whole list, and the probes mix raw bytes in on purpose.
                        response = await http.request(
                            route.method,
                            probe.url,
                            headers=headers,  # type: ignore[arg-type]
                            content=probe.body,
                        )
                    except httpx.TransportError as exc:
                        verdicts.judge(request, probe, None, repr(exc))
                    else:
                        verdicts.judge(request, probe, response)
    verdicts.tally.figures.update(verdicts.by_class)
    assert verdicts.problems == [], f"{len(verdicts.problems)} problems:\n" + "\n".join(
        verdicts.problems[:60]
    )
    assert verdicts.tally.figures["server_errors"] == 0
    verdicts.tally.assert_nothing_lost()


async def test_a_repeated_idempotency_key_is_refused(client: httpx.AsyncClient, settings: Settings) -> None:
    callers = await make_callers(client, settings)
    twice = [(HEADER, str(uuid.uuid4())), (HEADER, str(uuid.uuid4()))]
    response = await client.post(
        "/orders",
        json=order_body("BR-1"),
        headers=[*bearer(callers.tokens["technician"]).items(), *twice],
    )
    assert_error_shape(response, 400, "duplicate_header")
    assert response.json()["error"]["details"] == {"header": "idempotency-key"}


def _counting(chunks: int, chunk: bytes = b" " * 16_384) -> tuple[list[int], AsyncIterator[bytes]]:
    sent = [0]

    async def body() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(chunks):
            sent[0] += len(chunk)
            yield chunk

    return sent, body()


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic abc", "Bearer not-a-key", f"Bearer sf_{'0' * 12}_{'A' * 43}"],
    ids=["missing", "not bearer", "malformed", "unknown"],
)
async def test_an_anonymous_body_is_refused_before_a_byte_of_it_is_read(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    sent, body = _counting(6_000)  # ~100 MB if anyone read it
    headers = {"content-type": "application/json"} | (
        {"authorization": authorization} if authorization else {}
    )
    response = await client.post("/parts", content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert sent[0] == 0


async def test_a_json_body_past_the_cap_is_cut_off_while_it_streams(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    admin = await make_admin_token(settings)
    sent, body = _counting(6_000)
    response = await client.post(
        "/parts", content=body, headers={"content-type": "application/json", **bearer(admin)}
    )
    assert_error_shape(response, 413, "payload_too_large")
    assert sent[0] <= JSON_CAP + 2 * 16_384

    declared = await client.post(
        "/parts",
        content=b"{}",
        headers={"content-type": "application/json", "content-length": str(JSON_CAP + 1), **bearer(admin)},
    )
    assert_error_shape(declared, 413, "payload_too_large")


@pytest.mark.parametrize("date", OVERFLOWING_DATES)
async def test_an_order_date_that_overflows_utc_is_a_validation_error(
    client: httpx.AsyncClient, settings: Settings, date: str
) -> None:
    shop = await make_shop(client, settings, {"hamburg": HAMBURG})
    body = {**order_body(shop["part"]["part_number"]), "need_by": date}
    del body["sla"]
    response = await client.post(
        "/orders", json=body, headers={**bearer(shop["tech"]), HEADER: str(uuid.uuid4())}
    )
    assert_error_shape(response, 422, "validation_error")
    assert response.json()["error"]["details"][0]["loc"] == ["body", "need_by"]


@pytest.mark.parametrize("date", OVERFLOWING_DATES)
@pytest.mark.parametrize("field", ["occurred_at", "estimated_delivery_at"])
async def test_a_signed_webhook_date_that_overflows_utc_is_refused(
    client: httpx.AsyncClient, settings: Settings, date: str, field: str
) -> None:
    callers = await make_callers(client, settings)
    data = {"tracking_number": "T-1", "status": "in_transit", "occurred_at": "2026-01-01T00:00:00Z"}
    body = json.dumps({"type": "tracking.updated", "data": {**data, field: date}}).encode()
    headers = sign([callers.partner_secret], f"msg_{uuid.uuid4().hex}", utcnow(), body)
    response = await client.post(f"/webhooks/partners/{callers.partner}", content=body, headers=headers)
    assert_error_shape(response, 422, "webhook_payload_invalid")


@pytest.mark.parametrize("date", OVERFLOWING_DATES)
async def test_a_karrio_event_time_that_overflows_utc_is_refused(
    client: httpx.AsyncClient, settings: Settings, date: str
) -> None:
    callers = await make_callers(client, settings)
    event = {"status": "in_transit", "code": "IT", "description": "moving", "timestamp": date}
    tracker = {"id": "trk_1", "tracking_number": "T-1", "status": "in_transit", "events": [event]}
    response = await client.post(
        "/webhooks/karrio",
        json={"event": "tracker_updated", "data": tracker},
        headers={"x-event-id": callers.karrio_secret},
    )
    assert_error_shape(response, 422, "webhook_payload_invalid")
