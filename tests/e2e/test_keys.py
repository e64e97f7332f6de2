"""API keys: shown once, stored hashed, scoped to their owner, revocable."""

from __future__ import annotations

import hashlib

import httpx
import pytest
import sqlalchemy as sa

from services.config import Settings
from services.db import create_engine
from tests.builders import bearer, make_account, make_admin_token, make_key, make_site


@pytest.fixture
async def admin(settings: Settings) -> str:
    return await make_admin_token(settings)


async def test_key_is_shown_once_and_stored_only_as_a_hash(
    client: httpx.AsyncClient, admin: str, settings: Settings
) -> None:
    org = await make_account(client, admin, "organizations")
    token = await make_key(client, admin, "technician", organization_id=org["id"])
    listed = (await client.get("/keys", headers=bearer(admin))).json()
    assert all("token" not in key for key in listed)
    assert token not in str(listed)

    engine = create_engine(settings.resolved_database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT * FROM api_key"))).mappings().all()
    finally:
        await engine.dispose()
    secret = token.split("_", 2)[2]
    assert not any(secret in str(dict(row)) for row in rows)
    assert hashlib.sha256(secret.encode()).hexdigest() in {row["secret_sha256"] for row in rows}

    me = (await client.get("/me", headers=bearer(token))).json()
    assert me["role"] == "technician"
    assert me["organization_id"] == org["id"]


async def test_revoked_key_no_longer_authenticates(client: httpx.AsyncClient, admin: str) -> None:
    token = await make_key(client, admin, "admin")
    assert (await client.get("/me", headers=bearer(token))).status_code == 200
    revoked = await client.delete(f"/keys/{token.split('_')[1]}", headers=bearer(admin))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    response = await client.get("/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer sf_",
        "Basic dXNlcjpwYXNz",
        "Bearer sf_abc_def",
        "Bearer " + "x" * 5000,
        "Bearer \x7f",
    ],
)
async def test_malformed_credentials_are_401(client: httpx.AsyncClient, header: str) -> None:
    response = await client.get("/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"]["code"] in {"not_authenticated", "invalid_api_key"}


async def test_a_key_with_the_right_id_and_wrong_secret_is_refused(
    client: httpx.AsyncClient, admin: str
) -> None:
    key_id = admin.split("_")[1]
    response = await client.get("/me", headers=bearer(f"sf_{key_id}_{'A' * 43}"))
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("role", "owner", "code"),
    [
        ("technician", {}, "invalid_key_owner"),
        ("admin", {"organization_id": "org"}, "invalid_key_owner"),
        ("factory", {"organization_id": "org"}, "invalid_key_owner"),
        ("partner", {"site_id": "site"}, "invalid_key_owner"),
        ("technician", {"organization_id": "00000000-0000-4000-8000-000000000000"}, "organization_not_found"),
    ],
)
async def test_keys_must_belong_to_the_account_their_role_needs(
    client: httpx.AsyncClient, admin: str, role: str, owner: dict[str, str], code: str
) -> None:
    org = await make_account(client, admin, "organizations")
    site = await make_site(client, admin)
    ids = {"org": org["id"], "site": site["id"]}
    body = {"role": role, **{k: ids.get(v, v) for k, v in owner.items()}}
    response = await client.post("/keys", json=body, headers=bearer(admin))
    assert response.status_code in (404, 422), response.text
    assert response.json()["error"]["code"] == code
