"""Tenancy: a second organization's technician, holding every id of the first organization's objects, gets
none of them, through any route of the app.

Org A owns one object of every kind an organization can own (a part and its revision, orders, their print
jobs, a shipment, a webhook endpoint, a technician's key). Org B's technician then calls every route that has
a path parameter, with A's ids substituted, by every method the route has; every list route, plain and
filtered by A's values; and every request body field that names another object. The routes come from the
app's own OpenAPI document, so a new route is checked the day it is added, and the test fails when a route
has a path parameter it has no id of A's for (it cannot skip a route silently).

A technician may only be told "not found" (404) where its role may call the route, and "forbidden" (403)
where it may not; an answer of any kind must not carry an id of A's that B did not send itself. Whatever B
did, A's objects are as they were (nothing cancelled, rotated or deleted).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from services.config import Settings
from tests import tally
from tests.builders import (
    HAMBURG,
    NORDERSTEDT,
    bearer,
    get_json,
    make_account,
    make_key,
    make_print_job,
    make_shop,
    order_body,
    place_order,
    printed_order,
)
from tests.tally import Tally
from tests.workers import run_worker_until_idle

# PostgreSQL only: tenancy is decided by the services' queries, which are the same SQL on both backends, and
# the SQLite run would double the time for nothing the PostgreSQL run does not already show.
pytestmark = pytest.mark.parametrize("migrated_url", ["postgresql"], indirect=True)

# Where an outbound webhook of A's points: a loopback port nothing listens on. With private targets allowed
# for the test, registering it resolves nothing (no DNS), and a delivery, should a worker ever try one,
# stays on this machine.
WEBHOOK_URL = "http://127.0.0.1:9/spareflow-test"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhooks_allow_private_targets": True})


@dataclass(frozen=True)
class Tenants:
    """Org A with one of everything, org B with a technician, and a key of every role."""

    admin: str
    tech_a: str
    tech_b: str
    factory: str  # the site that printed A's order
    partner: str
    # A's value for each path parameter of the app (plus the operator's site and partner, which are no
    # organization's).
    path_values: dict[str, list[str]]
    # A's value for request fields and query parameters that name an object.
    field_values: dict[str, str]
    # Every id (and number) of A's objects: none may appear in an answer to B.
    owned: frozenset[str] = field(repr=False)


async def make_tenants(client: httpx.AsyncClient, settings: Settings) -> Tenants:
    """Org A (``acme``): a checked part, an order printed and booked with the local courier, a second order
    prepared for printing, an operator's print job, a webhook endpoint. Org B: a technician, nothing else.

    The webhook endpoint comes last, after the last worker run: nothing is ever delivered to it."""
    shop = await make_shop(client, settings, {"hamburg": HAMBURG})
    admin, tech_a, part = shop["admin"], shop["tech"], shop["part"]
    printed = await printed_order(client, settings, shop)
    waiting = await place_order(client, tech_a, order_body("BR-1", NORDERSTEDT))
    assert waiting.status_code == 201, waiting.text
    revisions = await client.get(f"/parts/{part['id']}/revisions", headers=bearer(tech_a))
    revision = revisions.json()[0]
    operator_job = await make_print_job(client, admin, revision["id"])
    await run_worker_until_idle(settings)  # books the shipment, prepares the second order and the job

    orders = [await get_json(client, tech_a, f"/orders/{o['id']}") for o in (printed, waiting.json())]
    shipment = await get_json(client, tech_a, f"/orders/{printed['id']}/shipment")
    endpoint = await client.post("/webhook-endpoints", json={"url": WEBHOOK_URL}, headers=bearer(tech_a))
    assert endpoint.status_code == 201, endpoint.text
    org_b = await make_account(client, admin, "organizations", slug="org-b")
    partner = await make_account(client, admin, "partners", slug="partner-1")
    site = shop["hamburg"]
    print_jobs = [str(o["print_job_id"]) for o in orders if o["print_job_id"]] + [operator_job["id"]]
    tech_a_key_id = tech_a.split("_")[1]
    path_values = {
        "part_id": [part["id"]],
        "revision_id": [revision["id"]],
        "order_id": [o["id"] for o in orders],
        "job_id": print_jobs,
        "shipment_id": [shipment["id"]],
        "endpoint_id": [endpoint.json()["id"]],
        "key_id": [tech_a_key_id],
        # The operator's, not A's: routes taking these are for operators, and B must be forbidden them.
        "site_id": [site["id"]],
        "partner_id": [partner["id"]],
        "partner": [partner["slug"]],
        # Partners' events belong to no organization: the routes taking one are for operators only.
        "inbound_id": [str(uuid.uuid4())],
        "kind": ["gcode", "model"],
    }
    field_values = {
        "organization_id": shop["org"]["id"],
        "revision_id": revision["id"],
        "part_number": part["part_number"],
        "q": part["part_number"],
        "equipment_model": part["equipment_models"][0],
        "cursor": orders[0]["id"],
    }
    owned = {
        shop["org"]["id"],
        part["id"],
        part["part_number"],
        revision["id"],
        shipment["id"],
        endpoint.json()["id"],
        endpoint.json()["secret"],
        tech_a_key_id,
        *print_jobs,
        *(o["id"] for o in orders),
    }
    if shipment["tracking_number"]:
        owned.add(shipment["tracking_number"])
    return Tenants(
        admin=admin,
        tech_a=tech_a,
        tech_b=await make_key(client, admin, "technician", organization_id=org_b["id"]),
        factory=await make_key(client, admin, "factory", site_id=site["id"]),
        partner=await make_key(client, admin, "partner", partner_id=partner["id"]),
        path_values=path_values,
        field_values=field_values,
        owned=frozenset(owned),
    )


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    roles: frozenset[str] | None  # None: no API key opens it (signed webhooks, public routes)
    operation: dict[str, Any]


def routes(openapi: dict[str, Any]) -> list[Route]:
    """Every operation of the OpenAPI document with the roles its security requirement names."""
    found = []
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            requirements = operation.get("security")
            roles = (
                frozenset(
                    role for requirement in requirements for scopes in requirement.values() for role in scopes
                )
                if requirements
                else None
            )
            found.append(Route(method.upper(), path, roles, operation))
    return found


def _fills(path: str, values: dict[str, list[str]]) -> list[str]:
    """``path`` with A's values for its parameters, one URL per combination."""
    urls = [path]
    for name in re.findall(r"\{(\w+)\}", path):
        assert name in values, f"no id of org A's for {{{name}}} in {path}: add one to make_tenants"
        urls = [url.replace(f"{{{name}}}", value) for url in urls for value in values[name]]
    return urls


def _body_fields(route: Route, openapi: dict[str, Any]) -> set[str]:
    """The request body's top-level properties (JSON bodies; the schema's own ``$ref`` resolved)."""
    content = route.operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    if "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return set(schema.get("properties", {}))


# B's own, otherwise valid, request bodies into which one of A's values is put at a time. Every body field of
# a route B may call that names another object must have one here (the test says which is missing).
BODY_PROBES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/orders"): {k: v for k, v in order_body("BR-1").items() if k != "part_number"},
    ("POST", "/webhook-endpoints"): {"url": WEBHOOK_URL},
}
REFERENCE_FIELD = re.compile(r"^(\w+_id|part_number)$")


@dataclass
class Verdicts:
    """Each answer to B is a correct refusal, a leak, or wrong in another way (a 500, a 409 where only "not
    found" may be said)."""

    owned: frozenset[str]
    tally: Tally
    problems: list[str] = field(default_factory=list)

    def judge(self, response: httpx.Response, *, sent: str, expected: set[int], aimed_at_a: bool) -> None:
        """``sent``: the request as text; ``expected``: the statuses of a correct refusal (empty: any but a
        server error); ``aimed_at_a``: the request names one of A's objects, so any 2xx is a leak."""
        self.tally.attempted += 1
        request = f"{response.request.method} {sent}"
        # An error that repeats the id B sent tells B nothing; any other id of A's does.
        carried = sorted(value for value in self.owned if value in response.text and value not in sent)
        if carried or (aimed_at_a and response.is_success):
            self.tally.figures["leaks"] = int(self.tally.figures["leaks"]) + 1
            self.problems.append(f"LEAK {request} -> {response.status_code} {carried}: {response.text[:300]}")
        elif (expected and response.status_code not in expected) or response.status_code >= 500:
            wanted = sorted(expected) or "no server error"
            self.problems.append(
                f"{request} -> {response.status_code}, expected {wanted}: {response.text[:300]}"
            )
        else:
            self.tally.ok += 1


def _expected(route: Route) -> set[int]:
    if route.roles is None:
        return {400, 401}  # signed webhooks: unsigned requests are refused before anything is looked up
    # Only "not found" where B may call the route: a 409 or 422 would mean A's object was looked at first.
    return {404} if "technician" in route.roles else {403}


def _owner_token(tenants: Tenants, route: Route) -> str:
    assert route.roles is not None
    if "technician" in route.roles:
        return tenants.tech_a
    return tenants.factory if "factory" in route.roles else tenants.admin


async def _snapshot(
    client: httpx.AsyncClient, tenants: Tenants, urls: list[tuple[Route, str]]
) -> dict[str, str]:
    """A's own view (or the operator's, or its site's) of everything B was pointed at."""
    seen = {}
    for route, url in urls:
        if route.method == "GET" and route.roles is not None:
            response = await client.get(url, headers=bearer(_owner_token(tenants, route)))
            seen[url] = f"{response.status_code} {response.text}"
    return seen


async def test_a_technician_of_another_organization_gets_none_of_its_objects(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    tenants = await make_tenants(client, settings)
    openapi = (await client.get("/openapi.json")).json()
    every = routes(openapi)
    b = bearer(tenants.tech_b)
    verdicts = Verdicts(
        tenants.owned, tally.record(Tally(scenario="cross-tenant: org B's technician on org A's ids"))
    )
    verdicts.tally.figures["leaks"] = 0

    # Every route with a path parameter, every method, A's ids in the path.
    with_ids = [(r, url) for r in every if "{" in r.path for url in _fills(r.path, tenants.path_values)]
    before = await _snapshot(client, tenants, with_ids)
    for route, url in with_ids:
        body: dict[str, object] | None = {} if route.method in {"POST", "PUT", "PATCH"} else None
        response = await client.request(route.method, url, json=body, headers=b)
        verdicts.judge(response, sent=url, expected=_expected(route), aimed_at_a=True)

    # Every list, plain and filtered by A's values (which may be refused, an unknown cursor, or match none).
    lists = [r for r in every if r.method == "GET" and "{" not in r.path]
    for route in lists:
        # Public routes (health, readiness) answer anyone; what they say is checked for A's ids like the rest.
        plain = _expected(route) if route.roles and "technician" not in route.roles else set()
        filters = [p["name"] for p in route.operation.get("parameters", []) if p["in"] == "query"]
        for query in [
            {},
            *({name: tenants.field_values[name]} for name in filters if name in tenants.field_values),
        ]:
            response = await client.get(route.path, params=query, headers=b)
            sent = f"{route.path}?{httpx.QueryParams(query)}"
            verdicts.judge(response, sent=sent, expected=set() if query else plain, aimed_at_a=False)
            if not query and route.roles and "technician" in route.roles:
                assert response.status_code == 200, (route.path, response.text)

    # Every body field that names an object, in the routes B may call, set to A's.
    for route in every:
        if not route.roles or "technician" not in route.roles or "{" in route.path:
            continue
        references = sorted(name for name in _body_fields(route, openapi) if REFERENCE_FIELD.match(name))
        if not references:
            continue
        assert (route.method, route.path) in BODY_PROBES, (
            f"add a body to BODY_PROBES for {route.method} {route.path}"
        )
        for name in references:
            body = {**BODY_PROBES[route.method, route.path], name: tenants.field_values[name]}
            headers = {**b, "Idempotency-Key": str(uuid.uuid4())}
            response = await client.request(route.method, route.path, json=body, headers=headers)
            verdicts.judge(response, sent=f"{route.path} {json.dumps(body)}", expected={404}, aimed_at_a=True)
    after = await _snapshot(client, tenants, with_ids)

    assert verdicts.tally.figures["leaks"] == 0, "\n".join(verdicts.problems)
    assert verdicts.problems == [], "\n".join(verdicts.problems)
    verdicts.tally.assert_nothing_lost()
    assert after == before, "B's requests changed A's objects"
