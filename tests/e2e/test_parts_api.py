"""The catalog through its HTTP API: create, upload every format, search back, download, revise."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from services.config import Settings
from services.demo.meshes import DEMO_PARTS
from tests.builders import bearer, make_account, make_admin_token, make_key, make_part, model_bytes, upload

FORMATS = ["stl-binary", "stl-ascii", "obj", "3mf"]


@pytest.fixture
async def admin(settings: Settings) -> str:
    return await make_admin_token(settings)


@pytest.fixture
async def org(client: httpx.AsyncClient, admin: str) -> dict[str, str]:
    return await make_account(client, admin, "organizations", slug="northwind")


@pytest.mark.parametrize("file_format", FORMATS)
async def test_upload_each_format_then_find_it_by_search(
    client: httpx.AsyncClient, admin: str, org: dict[str, str], file_format: str
) -> None:
    demo = DEMO_PARTS[FORMATS.index(file_format)]
    part = await make_part(
        client,
        admin,
        organization_id=org["id"],
        part_number=demo.part_number,
        name=demo.name,
        equipment_models=demo.equipment_models,
    )
    data = model_bytes(file_format, FORMATS.index(file_format))
    # A misleading name: the format must come from the content.
    response = await upload(client, admin, part["id"], data, filename="model.bin", note="first cut")

    assert response.status_code == 202, response.text
    revision = response.json()
    assert revision["format"] == file_format
    assert revision["status"] == "uploaded"
    assert revision["number"] == 1
    assert revision["sha256"] == hashlib.sha256(data).hexdigest()
    assert revision["size_bytes"] == len(data)
    assert revision["note"] == "first cut"
    assert revision["geometry_report"] is None

    tech = bearer(await make_key(client, admin, "technician", organization_id=org["id"]))
    for params in (
        {"part_number": demo.part_number.lower()[:6]},
        {"q": demo.name.split()[0].upper()},
        {"equipment_model": demo.equipment_models[0].lower()},
    ):
        found = (await client.get("/parts", params=params, headers=tech)).json()["items"]
        assert [p["part_number"] for p in found] == [demo.part_number], params
        assert found[0]["latest_revision"]["id"] == revision["id"]

    model = await client.get(f"/parts/{part['id']}/revisions/{revision['id']}/model", headers=tech)
    assert model.status_code == 200
    assert model.content == data
    assert model.headers["etag"] == f'"{revision["sha256"]}"'


async def test_revisions_number_up_and_share_identical_blobs(
    client: httpx.AsyncClient, admin: str, org: dict[str, str], settings: Settings
) -> None:
    part = await make_part(client, admin, organization_id=org["id"])
    data = model_bytes()
    first = (await upload(client, admin, part["id"], data)).json()
    second = (await upload(client, admin, part["id"], data)).json()
    third = (await upload(client, admin, part["id"], model_bytes("3mf", 1))).json()

    assert [first["number"], second["number"], third["number"]] == [1, 2, 3]
    assert first["sha256"] == second["sha256"] != third["sha256"]
    blobs = [p for p in settings.resolved_blob_dir.glob("??/??/*")]
    assert sorted(p.name for p in blobs) == sorted({first["sha256"], third["sha256"]})
    listed = (await client.get(f"/parts/{part['id']}/revisions", headers=bearer(admin))).json()
    assert [r["number"] for r in listed] == [1, 2, 3]
    got = (await client.get(f"/parts/{part['id']}", headers=bearer(admin))).json()
    assert got["latest_revision"]["number"] == 3


async def test_search_matches_every_word_and_pages_with_a_cursor(
    client: httpx.AsyncClient, admin: str, org: dict[str, str]
) -> None:
    for i in range(5):
        await make_part(
            client, admin, organization_id=org["id"], part_number=f"P-{i:03d}", name=f"Knob {i} red_100%"
        )
    await make_part(client, admin, organization_id=org["id"], part_number="Q-1", name="Bracket")

    words = await client.get("/parts", params={"q": "knob RED"}, headers=bearer(admin))
    assert len(words.json()["items"]) == 5
    # LIKE wildcards in the query are literal characters, not patterns.
    assert len((await client.get("/parts", params={"q": "n_b"}, headers=bearer(admin))).json()["items"]) == 0
    assert len((await client.get("/parts", params={"q": "100%"}, headers=bearer(admin))).json()["items"]) == 5

    seen, cursor = [], None
    while True:
        params: dict[str, str | int] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/parts", params=params, headers=bearer(admin))).json()
        seen += [p["part_number"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["P-000", "P-001", "P-002", "P-003", "P-004", "Q-1"]


async def test_part_numbers_are_unique_per_organization(
    client: httpx.AsyncClient, admin: str, org: dict[str, str]
) -> None:
    other = await make_account(client, admin, "organizations", slug="southwind")
    await make_part(client, admin, organization_id=org["id"], part_number="X-1")
    await make_part(client, admin, organization_id=other["id"], part_number="X-1")
    body = {
        "organization_id": org["id"],
        "part_number": "X-1",
        "name": "Dup",
        "process": "fdm",
        "materials": ["PLA"],
    }
    response = await client.post("/parts", json=body, headers=bearer(admin))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "part_number_taken"


async def test_patch_updates_metadata_and_equipment(
    client: httpx.AsyncClient, admin: str, org: dict[str, str]
) -> None:
    part = await make_part(client, admin, organization_id=org["id"], equipment_models=("A-1", "B-2"))
    response = await client.patch(
        f"/parts/{part['id']}",
        json={"name": "Bracket v2", "equipment_models": ["C-3", "c-3"]},
        headers=bearer(admin),
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Bracket v2"
    assert response.json()["equipment_models"] == ["C-3"]
    assert response.json()["part_number"] == part["part_number"]
    by_old = await client.get("/parts", params={"equipment_model": "A-1"}, headers=bearer(admin))
    assert by_old.json()["items"] == []


async def test_technician_sees_only_its_own_organization(
    client: httpx.AsyncClient, admin: str, org: dict[str, str]
) -> None:
    other = await make_account(client, admin, "organizations", slug="southwind")
    part = await make_part(client, admin, organization_id=org["id"])
    revision = (await upload(client, admin, part["id"], model_bytes())).json()
    outsider = bearer(await make_key(client, admin, "technician", organization_id=other["id"]))
    insider = bearer(await make_key(client, admin, "technician", organization_id=org["id"]))

    assert (await client.get("/parts", headers=outsider)).json()["items"] == []
    filtered = await client.get("/parts", params={"organization_id": org["id"]}, headers=outsider)
    assert filtered.json()["items"] == []
    for path in (
        f"/parts/{part['id']}",
        f"/parts/{part['id']}/revisions",
        f"/parts/{part['id']}/revisions/{revision['id']}",
        f"/parts/{part['id']}/revisions/{revision['id']}/model",
    ):
        denied = await client.get(path, headers=outsider)
        assert denied.status_code == 404, path
        assert denied.json()["error"]["code"] == "part_not_found"
        assert (await client.get(path, headers=insider)).status_code == 200, path
