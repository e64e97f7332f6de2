"""Upload -> worker check/repair -> print job -> orientation -> slice -> G-code, through the API and a real
worker on the real Redis, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import shutil
from typing import Any

import httpx
import numpy as np
import pytest
import trimesh

from services.config import Settings
from services.demo.meshes import DEMO_PARTS, export_model
from tests.builders import (
    DEMO_PRINTER,
    bearer,
    make_account,
    make_admin_token,
    make_part,
    make_print_job,
    upload,
)
from tests.workers import run_worker_until_idle


@pytest.fixture
async def admin(settings: Settings) -> str:
    return await make_admin_token(settings)


@pytest.fixture
async def part(client: httpx.AsyncClient, admin: str) -> dict[str, Any]:
    org = await make_account(client, admin, "organizations", slug="northwind")
    return await make_part(client, admin, organization_id=org["id"])


async def revision_after_check(
    client: httpx.AsyncClient, admin: str, settings: Settings, part_id: str, data: bytes, **form: str
) -> dict[str, Any]:
    uploaded = await upload(client, admin, part_id, data, **form)
    assert uploaded.status_code == 202, uploaded.text
    assert uploaded.json()["status"] == "uploaded"
    await run_worker_until_idle(settings)
    path = f"/parts/{part_id}/revisions/{uploaded.json()['id']}"
    return dict((await client.get(path, headers=bearer(admin))).json())


def stl(mesh: trimesh.Trimesh) -> bytes:
    buffer = io.BytesIO()
    mesh.export(buffer, file_type="stl")
    return buffer.getvalue()


def open_box() -> trimesh.Trimesh:
    """A 30 x 20 x 10 box with its lid (both triangles of the top face) missing."""
    box = trimesh.creation.box(extents=(30, 20, 10))
    keep = box.face_normals[:, 2] < 0.5
    return trimesh.Trimesh(vertices=box.vertices, faces=box.faces[keep], process=False)


@pytest.mark.parametrize("index", range(len(DEMO_PARTS)))
async def test_uploaded_parts_are_checked_by_the_worker(
    client: httpx.AsyncClient, admin: str, settings: Settings, part: dict[str, Any], index: int
) -> None:
    demo = DEMO_PARTS[index]
    mesh = demo.build()
    revision = await revision_after_check(
        client, admin, settings, part["id"], export_model(mesh, demo.file_format)
    )

    assert revision["status"] == "ready"
    report = revision["geometry_report"]
    assert report["version"] == 1
    assert report["verdict"] == "ok"
    assert report["format"] == demo.file_format
    assert report["facts"]["faces"] == len(mesh.faces)
    assert report["facts"]["watertight"] is True
    assert report["facts"]["volume_mm3"] == pytest.approx(mesh.volume, rel=1e-3)


async def test_an_open_model_is_repaired_and_the_original_kept(
    client: httpx.AsyncClient, admin: str, settings: Settings, part: dict[str, Any]
) -> None:
    data = stl(open_box())
    revision = await revision_after_check(client, admin, settings, part["id"], data)

    assert revision["status"] == "ready", revision["geometry_report"]
    report = revision["geometry_report"]
    assert report["verdict"] == "repairable"
    assert "not_watertight" in report["reasons"]
    assert report["repair"]["verdict"] == "ok"
    assert report["repair"]["check"]["facts"]["watertight"] is True
    assert report["repair"]["check"]["facts"]["volume_mm3"] == pytest.approx(6000, rel=0.01)
    assert revision["repaired_sha256"] not in (None, revision["sha256"])
    original = await client.get(
        f"/parts/{part['id']}/revisions/{revision['id']}/model", headers=bearer(admin)
    )
    assert original.content == data


async def test_a_model_in_metres_is_rejected_unless_its_units_are_declared(
    client: httpx.AsyncClient, admin: str, settings: Settings, part: dict[str, Any]
) -> None:
    metres = stl(trimesh.creation.box(extents=(0.04, 0.03, 0.02)))
    guessed = await revision_after_check(client, admin, settings, part["id"], metres)
    assert guessed["status"] == "rejected"
    assert "units_suspect" in guessed["geometry_report"]["reasons"]

    declared = await revision_after_check(client, admin, settings, part["id"], metres, units="meter")
    assert declared["status"] == "ready"
    assert declared["declared_unit"] == "meter"
    assert declared["geometry_report"]["facts"]["volume_mm3"] == pytest.approx(40 * 30 * 20, rel=1e-6)


async def test_a_flat_model_is_rejected_with_a_reason(
    client: httpx.AsyncClient, admin: str, settings: Settings, part: dict[str, Any]
) -> None:
    flat = trimesh.Trimesh(
        vertices=np.array([[0, 0, 0], [50, 0, 0], [50, 50, 0], [0, 50, 0]], dtype=float),
        faces=np.array([[0, 1, 2], [0, 2, 3]]),
        process=False,
    )
    revision = await revision_after_check(client, admin, settings, part["id"], stl(flat))
    assert revision["status"] == "rejected"
    assert revision["geometry_report"]["reasons"]


async def prepared(
    client: httpx.AsyncClient, admin: str, settings: Settings, revision_id: str, printer: dict[str, Any]
) -> dict[str, Any]:
    job = await make_print_job(client, admin, revision_id, printer)
    assert job["status"] == "waiting_geometry"
    await run_worker_until_idle(settings)
    return dict((await client.get(f"/print-jobs/{job['id']}", headers=bearer(admin))).json())


SLICERS = {
    "estimator": None,
    "prusaslicer": "prusa-slicer",
    "curaengine": "CuraEngine",
}


@pytest.mark.parametrize("slicer", sorted(SLICERS))
async def test_a_print_job_ends_with_gcode_and_estimates(
    client: httpx.AsyncClient, admin: str, settings: Settings, part: dict[str, Any], slicer: str
) -> None:
    binary = SLICERS[slicer]
    if binary and shutil.which(binary) is None:
        pytest.skip(f"{binary} is not installed (.ci/run installs it)")
    if slicer == "curaengine" and settings.resolved_cura_resources_dir is None:
        pytest.skip("Cura machine definitions are not present (.ci/run extracts them to .cache/cura)")
    demo = DEMO_PARTS[0]
    revision = await revision_after_check(
        client, admin, settings, part["id"], export_model(demo.build(), demo.file_format)
    )
    job = await prepared(client, admin, settings, revision["id"], {**DEMO_PRINTER, "slicer": slicer})

    assert job["status"] == "ready", job["failure"]
    cut = job["slice"]
    assert cut["slicer"] == slicer
    assert cut["print_seconds"] > 60
    assert cut["filament_mm3"] > 0.2 * revision["geometry_report"]["facts"]["volume_mm3"]
    assert cut["layer_count"] >= 10
    assert job["orientation"]["fits"] is True
    gcode = await client.get(f"/print-jobs/{job['id']}/gcode", headers=bearer(admin))
    assert gcode.status_code == 200
    assert hashlib.sha256(gcode.content).hexdigest() == cut["gcode_sha256"]
    assert len(gcode.content) == cut["gcode_bytes"] > 0


async def test_a_repeat_job_takes_the_slice_cache(
    client: httpx.AsyncClient, admin: str, settings: Settings, part: dict[str, Any]
) -> None:
    demo = DEMO_PARTS[1]
    revision = await revision_after_check(
        client, admin, settings, part["id"], export_model(demo.build(), demo.file_format)
    )
    printer = {**DEMO_PRINTER, "slicer": "estimator"}
    first = await prepared(client, admin, settings, revision["id"], printer)
    second = await prepared(client, admin, settings, revision["id"], printer)
    assert first["status"] == second["status"] == "ready"
    assert second["slice"] == first["slice"]
    assert second["attempts"] == 1

    finer = {**printer, "profile": {"layer_height_mm": 0.1}}
    third = await prepared(client, admin, settings, revision["id"], finer)
    assert third["slice"]["gcode_sha256"] != first["slice"]["gcode_sha256"]
    assert third["slice"]["layer_count"] > first["slice"]["layer_count"]


async def test_a_part_too_big_for_the_bed_fails_before_slicing(
    client: httpx.AsyncClient, admin: str, settings: Settings, part: dict[str, Any]
) -> None:
    demo = DEMO_PARTS[0]
    revision = await revision_after_check(
        client, admin, settings, part["id"], export_model(demo.build(), demo.file_format)
    )
    tiny = {"name": "pocket", "build_volume": {"x_mm": 20, "y_mm": 20, "z_mm": 20}, "slicer": "estimator"}
    job = await prepared(client, admin, settings, revision["id"], tiny)
    assert job["status"] == "failed"
    assert job["failure"]["code"] == "too_large_for_bed"
    assert job["slice"] is None
    not_ready = await client.get(f"/print-jobs/{job['id']}/gcode", headers=bearer(admin))
    assert not_ready.status_code == 409


async def test_a_job_for_a_rejected_model_fails_with_the_reason(
    client: httpx.AsyncClient, admin: str, settings: Settings, part: dict[str, Any]
) -> None:
    metres = stl(trimesh.creation.box(extents=(0.04, 0.03, 0.02)))
    revision = await revision_after_check(client, admin, settings, part["id"], metres)
    job = await prepared(client, admin, settings, revision["id"], DEMO_PRINTER)
    assert job["status"] == "failed"
    assert job["failure"]["code"] == "revision_rejected"


async def test_a_job_created_before_the_check_waits_for_it(
    client: httpx.AsyncClient, admin: str, settings: Settings, part: dict[str, Any]
) -> None:
    demo = DEMO_PARTS[2]
    uploaded = await upload(client, admin, part["id"], export_model(demo.build(), demo.file_format))
    job = await make_print_job(client, admin, uploaded.json()["id"], {**DEMO_PRINTER, "slicer": "estimator"})
    await run_worker_until_idle(settings)
    done = (await client.get(f"/print-jobs/{job['id']}", headers=bearer(admin))).json()
    assert done["status"] == "ready"
