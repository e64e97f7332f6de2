"""One error shape for every 4xx/5xx, validation included; bad input never reaches the database."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from services.api.app import create_app
from services.config import Settings
from tests.builders import bearer, make_account, make_admin_token


def assert_error_shape(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert "Traceback" not in response.text


@pytest.fixture
async def admin(settings: Settings) -> str:
    return await make_admin_token(settings)


@pytest.fixture
async def org(client: httpx.AsyncClient, admin: str) -> dict[str, str]:
    return await make_account(client, admin, "organizations", slug="northwind")


def part_body(org_id: str, **overrides: object) -> dict[str, object]:
    return {
        "organization_id": org_id,
        "part_number": "A-1",
        "name": "Knob",
        "process": "fdm",
        "materials": ["PLA"],
        **overrides,
    }


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": "Knob\x00"},
        {"description": "bell\x07"},
        {"name": "x" * 201},
        {"description": "x" * 4001},
        {"part_number": "../etc"},
        {"part_number": ""},
        {"part_number": "A" * 65},
        {"materials": []},
        {"materials": ["PLA"] * 21},
        {"equipment_models": ["M\x00"]},
        {"process": "welding"},
        {"name": "two\nlines"},
        {"unexpected": 1},
    ],
    ids=lambda o: next(iter(o)),
)
async def test_invalid_part_bodies_are_422_and_write_nothing(
    client: httpx.AsyncClient, admin: str, org: dict[str, str], overrides: dict[str, object]
) -> None:
    response = await client.post("/parts", json=part_body(org["id"], **overrides), headers=bearer(admin))
    assert_error_shape(response, 422, "validation_error")
    assert response.json()["error"]["details"][0]["loc"]
    listed = await client.get("/parts", headers=bearer(admin))
    assert listed.json()["items"] == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": 0}, "validation_error"),
        ({"limit": 10_000_000}, "validation_error"),
        ({"limit": "many"}, "validation_error"),
        ({"q": "a\x00b"}, "validation_error"),
        ({"q": "x" * 201}, "validation_error"),
        ({"cursor": "not-a-cursor"}, "invalid_cursor"),
        ({"cursor": "W10"}, "invalid_cursor"),
        ({"organization_id": "nope"}, "validation_error"),
    ],
)
async def test_bad_search_parameters(
    client: httpx.AsyncClient, admin: str, params: dict[str, str | int], code: str
) -> None:
    response = await client.get("/parts", params=params, headers=bearer(admin))
    assert_error_shape(response, 422, code)


async def test_non_json_body_is_a_validation_error(client: httpx.AsyncClient, admin: str) -> None:
    response = await client.post(
        "/parts", content=b"{not json", headers={**bearer(admin), "content-type": "application/json"}
    )
    assert_error_shape(response, 422, "validation_error")


async def test_unknown_route_and_method_use_the_error_shape(client: httpx.AsyncClient, admin: str) -> None:
    assert_error_shape(await client.get("/nowhere", headers=bearer(admin)), 404, "not_found")
    assert_error_shape(await client.put("/parts", headers=bearer(admin)), 405, "method_not_allowed")
    assert_error_shape(await client.get("/parts/not-a-uuid", headers=bearer(admin)), 422, "validation_error")


async def test_unknown_part_is_404(client: httpx.AsyncClient, admin: str) -> None:
    response = await client.get("/parts/00000000-0000-4000-8000-000000000000", headers=bearer(admin))
    assert_error_shape(response, 404, "part_not_found")


async def test_duplicate_slug_is_409(client: httpx.AsyncClient, admin: str, org: dict[str, str]) -> None:
    response = await client.post(
        "/organizations", json={"slug": "northwind", "name": "Again"}, headers=bearer(admin)
    )
    assert_error_shape(response, 409, "slug_taken")


@pytest.mark.parametrize("slug", ["A", "Upper", "-x", "x-", "with space", "x" * 41, "dots.no"])
async def test_bad_slugs(client: httpx.AsyncClient, admin: str, slug: str) -> None:
    response = await client.post("/organizations", json={"slug": slug, "name": "N"}, headers=bearer(admin))
    assert_error_shape(response, 422, "validation_error")


async def test_unexpected_errors_are_500_without_a_traceback(settings: Settings) -> None:
    app: FastAPI = create_app(settings)

    @app.get("/explode")
    async def explode() -> None:
        raise RuntimeError("secret internals")

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/explode")
    assert_error_shape(response, 500, "internal_error")
    assert "secret internals" not in response.text
