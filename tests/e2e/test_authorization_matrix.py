"""Every endpoint x every role: allowed roles get through, others get 403, no key gets 401."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from services.accounts.models import Role
from services.api.app import create_app
from services.api.deps import authenticate
from services.config import Settings
from tests.builders import World, bearer, make_key, make_world

PUBLIC = {("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics")}
# Partners' webhooks authenticate by signature (or Karrio's secret), never by API key.
SIGNED = {("POST", "/webhooks/partners/{partner}"), ("POST", "/webhooks/karrio")}


def declared_roles(dependant: Dependant) -> set[str] | None:
    for sub in dependant.dependencies:
        if sub.call is authenticate:
            return set(sub.own_oauth_scopes or [])
        found = declared_roles(sub)
        if found is not None:
            return found
    return None


def api_routes() -> list[tuple[str, str, set[str] | None]]:
    routes = []
    for context in iter_route_contexts(create_app(Settings()).routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            # The path as documented: without converters (`/factory/jobs/{job_id}`, not `{job_id:uuid}`).
            assert context.path_format is not None
            assert route.methods is not None
            for method in sorted(route.methods):
                routes.append((method, context.path_format, declared_roles(route.dependant)))
    assert routes, "no API routes found: has FastAPI's routing changed?"
    return routes


def test_every_endpoint_declares_its_roles() -> None:
    undeclared = [(m, p) for m, p, roles in api_routes() if roles is None and (m, p) not in PUBLIC | SIGNED]
    assert undeclared == []
    assert all(roles for m, p, roles in api_routes() if (m, p) not in PUBLIC | SIGNED)


def _fill(path: str, world: World, spare_key_id: str) -> str:
    values = {
        "part_id": world.part_a["id"],
        "revision_id": world.revision_a["id"],
        "key_id": spare_key_id,
        "job_id": world.print_job["id"],
        "site_id": world.site["id"],
        # Any id does: authorization is decided before the order is looked up (an allowed role gets 404).
        "order_id": str(uuid.uuid4()),
        "endpoint_id": str(uuid.uuid4()),
        "kind": "gcode",
        "partner": "partner-1",
        "partner_id": world.partner_id,
        "shipment_id": str(uuid.uuid4()),
        "inbound_id": str(uuid.uuid4()),
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


async def test_authorization_matrix(client: httpx.AsyncClient, settings: Settings) -> None:
    world = await make_world(client, settings)
    checked = 0
    for method, path, roles in api_routes():
        spare = await make_key(client, world.admin, "admin")
        url = _fill(path, world, spare_key_id=spare.split("_")[1])
        body: dict[str, object] | None = {} if method in {"POST", "PATCH", "PUT"} else None

        anonymous = await client.request(method, url, json=body)
        if (method, path) in SIGNED:
            # No API key opens them: unsigned, they are refused whoever calls.
            for headers in ({}, *(bearer(world.token(role)) for role in Role)):
                refused = await client.request(method, url, json=body, headers=headers)
                assert refused.status_code in (400, 401), (method, path, refused.text)
                assert refused.json()["error"]["code"].startswith("webhook_"), refused.text
            continue
        if (method, path) in PUBLIC:
            assert anonymous.status_code < 400, (method, path)
            continue
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert anonymous.json()["error"]["code"] == "not_authenticated"
        forged = await client.request(method, url, json=body, headers=bearer("sf_000000000000_" + "x" * 43))
        assert forged.status_code == 401, (method, path)

        for role in Role:
            response = await client.request(method, url, json=body, headers=bearer(world.token(role)))
            assert roles is not None
            if role in roles:
                assert response.status_code not in (401, 403), (method, path, role, response.text)
            else:
                assert response.status_code == 403, (method, path, role, response.text)
                assert response.json()["error"]["code"] == "forbidden"
            checked += 1
    assert checked >= 4 * 15


@pytest.mark.parametrize(("method", "path"), sorted(PUBLIC | SIGNED))
def test_public_endpoints_are_few(method: str, path: str) -> None:
    assert (method, path) in {(m, p) for m, p, _ in api_routes()}
