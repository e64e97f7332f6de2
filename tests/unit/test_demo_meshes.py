"""Tests for services.demo.meshes: every demo part is a printable solid that survives export and reload."""

from __future__ import annotations

import io
import zipfile
from collections import Counter

import pytest
import trimesh

from services.demo.meshes import DEMO_PARTS, FILE_FORMATS, DemoPart, export_model

TRIMESH_FILE_TYPES = {"stl-binary": "stl", "stl-ascii": "stl", "obj": "obj", "3mf": "3mf"}

each_part = pytest.mark.parametrize("part", DEMO_PARTS, ids=lambda part: part.part_number)
each_format = pytest.mark.parametrize("file_format", FILE_FORMATS)


def _reload(data: bytes, file_format: str) -> trimesh.Trimesh:
    mesh = trimesh.load(io.BytesIO(data), file_type=TRIMESH_FILE_TYPES[file_format], force="mesh")
    assert isinstance(mesh, trimesh.Trimesh)
    mesh.merge_vertices()
    return mesh


@each_part
def test_part_is_one_watertight_solid_standing_on_the_bed(part: DemoPart) -> None:
    mesh = part.build()

    assert mesh.is_watertight
    assert mesh.is_winding_consistent
    assert mesh.is_volume
    assert mesh.body_count == 1
    assert mesh.bounds[0][2] == 0.0
    assert all(5.0 <= extent <= 200.0 for extent in mesh.extents)
    # A real part fills a fair share of its bounding box; a sliver or an inside-out shell would not.
    assert 0.05 * mesh.bounding_box.volume < mesh.volume < mesh.bounding_box.volume


@each_part
def test_part_has_no_coincident_vertices(part: DemoPart) -> None:
    # Every loader welds coincident vertices; if two distinct ones coincide, welding can tear the solid.
    mesh = part.build()
    welded = mesh.copy()
    welded.merge_vertices()

    assert len(welded.vertices) == len(mesh.vertices)


@each_part
def test_build_and_export_are_deterministic(part: DemoPart) -> None:
    assert export_model(part.build(), part.file_format) == export_model(part.build(), part.file_format)


@each_part
@each_format
def test_export_reloads_as_the_same_solid(part: DemoPart, file_format: str) -> None:
    original = part.build()

    reloaded = _reload(export_model(original, file_format), file_format)

    # Binary STL stores float32, which the builders already emit; ASCII STL goes through float printing.
    tolerance = 1e-4 if file_format == "stl-ascii" else 1e-6
    assert len(reloaded.faces) == len(original.faces)
    assert reloaded.is_volume
    assert reloaded.volume == pytest.approx(original.volume, rel=tolerance)
    assert reloaded.bounds == pytest.approx(original.bounds, abs=1e-4)


def test_binary_stl_has_the_exact_binary_layout() -> None:
    mesh = DEMO_PARTS[0].build()

    data = export_model(mesh, "stl-binary")

    assert len(data) == 84 + 50 * len(mesh.faces)
    assert int.from_bytes(data[80:84], "little") == len(mesh.faces)
    # Some loaders sniff a header starting with "solid" as ASCII STL.
    assert not data.startswith(b"solid")


def test_ascii_stl_starts_with_solid() -> None:
    data = export_model(DEMO_PARTS[0].build(), "stl-ascii")

    assert data.startswith(b"solid")
    assert data.rstrip().endswith(b"endsolid")


def test_obj_carries_positions_and_faces_only() -> None:
    data = export_model(DEMO_PARTS[0].build(), "obj")

    assert {line.split(maxsplit=1)[0] for line in data.decode("ascii").splitlines() if line} == {"v", "f"}


def test_3mf_is_a_millimetre_package() -> None:
    with zipfile.ZipFile(io.BytesIO(export_model(DEMO_PARTS[0].build(), "3mf"))) as archive:
        assert set(archive.namelist()) == {"[Content_Types].xml", "_rels/.rels", "3D/3dmodel.model"}
        assert b'unit="millimeter"' in archive.read("3D/3dmodel.model")


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported file format"):
        export_model(DEMO_PARTS[0].build(), "step")


def test_catalog_covers_five_parts_with_unique_numbers() -> None:
    numbers = [part.part_number for part in DEMO_PARTS]

    assert len(numbers) >= 5
    assert len(set(numbers)) == len(numbers)


def test_catalog_uses_every_file_format() -> None:
    assert {part.file_format for part in DEMO_PARTS} == set(FILE_FORMATS)


def test_some_equipment_model_fits_several_parts() -> None:
    counts = Counter(model for part in DEMO_PARTS for model in part.equipment_models)

    assert max(counts.values()) >= 2


@each_part
def test_catalog_entry_is_complete(part: DemoPart) -> None:
    assert part.name
    assert part.description
    assert part.process == "fdm"
    assert part.materials
    assert part.equipment_models
    assert part.file_format in FILE_FORMATS
