"""The microfactory registry through its API and `spareflow sites import`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.config import Settings
from tests.builders import bearer, make_admin_token, make_site, site_body


@pytest.fixture
async def admin(settings: Settings) -> str:
    return await make_admin_token(settings)


async def test_register_read_replace_and_pause_a_site(client: httpx.AsyncClient, admin: str) -> None:
    site = await make_site(client, admin, "hamburg-1")
    assert site["status"] == "online"
    assert site["opening_hours"]["mon"] == [{"open": "08:00:00", "close": "17:00:00"}]
    assert "sat" not in site["opening_hours"]
    assert site["courier_cutoffs"]["fri"] == "16:00:00"
    assert set(site["transit"]) == {"express", "standard"}
    (printer,) = site["printers"]
    assert printer["key"] == "mk4-01"
    assert printer["profile"]["layer_height_mm"] == 0.2

    replaced = site_body(
        "hamburg-1",
        opening_hours={"sat": [{"open": "09:00", "close": "12:00"}, {"open": "13:00", "close": "15:00"}]},
        printers=[
            {**site_body("x")["printers"][0], "materials_loaded": ["PLA"]},
            {"key": "sla-01", "model": "Resin 5", "process": "sla",
             "build_volume": {"x_mm": 120, "y_mm": 70, "z_mm": 150}, "materials_supported": ["Tough Resin"]},
        ],
    )  # fmt: skip
    response = await client.put(f"/sites/{site['id']}", json=replaced, headers=bearer(admin))
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body["opening_hours"]) == ["sat"]
    assert [p["key"] for p in body["printers"]] == ["mk4-01", "sla-01"]
    assert body["printers"][0]["id"] == printer["id"]  # same printer, updated in place
    assert body["printers"][0]["materials_loaded"] == ["PLA"]

    paused = await client.patch(
        f"/sites/{site['id']}/status", json={"status": "paused"}, headers=bearer(admin)
    )
    assert paused.json()["status"] == "paused"
    listed = (await client.get("/sites", headers=bearer(admin))).json()
    assert [(s["slug"], s["status"]) for s in listed] == [("hamburg-1", "paused")]


MORNING = {"open": "08:00", "close": "12:00"}


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"latitude": 91}, "latitude"),
        ({"longitude": -181}, "longitude"),
        ({"opening_hours": {"mon": [MORNING, {"open": "11:00", "close": "17:00"}]}}, "opening_hours"),
        ({"opening_hours": {"mon": [{"open": "17:00", "close": "08:00"}]}}, "opening_hours"),
        ({"opening_hours": {"someday": []}}, "opening_hours"),
        ({"post_processing_minutes": -5}, "post_processing_minutes"),
        ({"transit": {}}, "transit"),
        ({"status": "exploded"}, "status"),
        ({"printers": [{**site_body("x")["printers"][0], "materials_loaded": ["Nylon"]}]}, "printers"),
        ({"printers": [site_body("x")["printers"][0]] * 2}, "printers"),
        ({"printers": [{**site_body("x")["printers"][0], "build_volume": {"x_mm": 0, "y_mm": 1, "z_mm": 1}}]},
         "printers"),
    ],
)  # fmt: skip
async def test_invalid_sites_are_refused(
    client: httpx.AsyncClient, admin: str, overrides: dict[str, Any], where: str
) -> None:
    response = await client.post("/sites", json=site_body("bad-site", **overrides), headers=bearer(admin))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["details"][0]["loc"][1] == where
    assert (await client.get("/sites", headers=bearer(admin))).json() == []


async def test_slugs_are_unique_and_fixed(client: httpx.AsyncClient, admin: str) -> None:
    site = await make_site(client, admin, "plant-a")
    again = await client.post("/sites", json=site_body("plant-a"), headers=bearer(admin))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "slug_taken"
    renamed = await client.put(f"/sites/{site['id']}", json=site_body("plant-b"), headers=bearer(admin))
    assert renamed.status_code == 409
    assert renamed.json()["error"]["code"] == "slug_immutable"
    missing = await client.get("/sites/00000000-0000-4000-8000-000000000000", headers=bearer(admin))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "site_not_found"


SPAREFLOW = str(Path(sys.executable).parent / "spareflow")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SPAREFLOW, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_import_json_and_csv_upserts_by_slug(tmp_path: Path) -> None:
    assert cli("db", "upgrade", cwd=tmp_path).returncode == 0
    sites = [site_body("north-1"), site_body("south-1", latitude=48.14, longitude=11.58)]
    (tmp_path / "sites.json").write_text(json.dumps(sites))
    first = cli("sites", "import", "sites.json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "2 sites created, 0 updated" in first.stdout

    (tmp_path / "sites.csv").write_text(
        "slug,name,latitude,longitude,timezone,printer_key,printer_model,build_x_mm,build_y_mm,build_z_mm,"
        "materials_supported,materials_loaded\n"
        "north-1,North One,53.55,9.99,Europe/Berlin,p1,Big,300,300,400,PLA;PETG,PLA\n"
        "north-1,North One,53.55,9.99,Europe/Berlin,p2,Small,180,180,180,PLA,\n"
        "east-1,East One,52.52,13.40,Europe/Berlin,p1,Mid,250,210,220,PETG,PETG\n"
    )
    second = cli("sites", "import", "sites.csv", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "1 sites created, 1 updated" in second.stdout


def test_an_invalid_import_changes_nothing(tmp_path: Path) -> None:
    assert cli("db", "upgrade", cwd=tmp_path).returncode == 0
    (tmp_path / "bad.json").write_text(
        json.dumps([site_body("good-1"), site_body("bad-1", timezone="Nowhere")])
    )
    result = cli("sites", "import", "bad.json", cwd=tmp_path)
    assert result.returncode == 2
    assert "site #2: timezone" in result.stderr
    (tmp_path / "ok.json").write_text(json.dumps([site_body("good-1")]))
    assert "1 sites created" in cli("sites", "import", "ok.json", cwd=tmp_path).stdout
    (tmp_path / "junk.csv").write_bytes(b"\xff\xfe\x00garbage")
    junk = cli("sites", "import", "junk.csv", cwd=tmp_path)
    assert junk.returncode == 2
    assert "invalid_import_file" in junk.stderr
