"""Tests for parts_catalog.geometry: loading each format into millimetres, the facts, the verdict rules."""

from __future__ import annotations

import builtins
import json
import struct
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from parts_catalog.formats import ModelFormat
from parts_catalog.geometry import (
    REPORT_VERSION,
    GeometryReport,
    MeshLimits,
    Reason,
    Unit,
    Verdict,
    analyse,
    check_model,
    load_model,
    reading,
)
from parts_catalog.geometry.reading import merge_coincident

LIMITS = MeshLimits()


# --- builders --------------------------------------------------------------------------------------------


def cube(*, size: float = 10.0, centre: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    box: trimesh.Trimesh = trimesh.creation.box(extents=(size, size, size))
    box.apply_translation(centre)
    return box


def without_faces(mesh: trimesh.Trimesh, drop: list[int]) -> trimesh.Trimesh:
    keep = np.setdiff1d(np.arange(len(mesh.faces)), drop)
    return trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces[keep], process=False)


def with_faces_flipped(mesh: trimesh.Trimesh, flip: list[int]) -> trimesh.Trimesh:
    faces = np.array(mesh.faces)
    faces[flip] = faces[flip][:, ::-1]
    return trimesh.Trimesh(vertices=mesh.vertices, faces=faces, process=False)


def combined(*meshes: trimesh.Trimesh) -> trimesh.Trimesh:
    result = trimesh.util.concatenate(list(meshes))
    assert isinstance(result, trimesh.Trimesh)
    return result


def write_binary_stl(
    path: Path,
    triangles: NDArray[np.float64],
    *,
    header: bytes = b"binary stl written by the tests",
    declared: int | None = None,
    trailing: bytes = b"",
) -> Path:
    """A binary STL, byte by byte: 80-byte header, uint32 count, 50-byte records."""
    count = len(triangles) if declared is None else declared
    records = np.zeros(len(triangles), dtype=[("n", "<f4", (3,)), ("v", "<f4", (3, 3)), ("a", "<u2")])
    records["v"] = triangles
    path.write_bytes(header.ljust(80, b" ")[:80] + struct.pack("<I", count) + records.tobytes() + trailing)
    return path


def write_stl(path: Path, mesh: trimesh.Trimesh) -> Path:
    return write_binary_stl(path, np.asarray(mesh.triangles))


def write_3mf(
    path: Path, mesh: trimesh.Trimesh, *, unit: str = "millimeter", transform: str | None = None
) -> Path:
    """A minimal 3MF package (3MF Core Specification 1.3): one mesh object, one build item."""
    vertices = "".join(f'<vertex x="{x!r}" y="{y!r}" z="{z!r}"/>' for x, y, z in mesh.vertices.tolist())
    triangles = "".join(f'<triangle v1="{a}" v2="{b}" v3="{c}"/>' for a, b, c in mesh.faces.tolist())
    item = f'<item objectid="1" transform="{transform}"/>' if transform else '<item objectid="1"/>'
    model = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<model unit="{unit}" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">'
        f'<resources><object id="1" type="model"><mesh><vertices>{vertices}</vertices>'
        f"<triangles>{triangles}</triangles></mesh></object></resources>"
        f"<build>{item}</build></model>"
    )
    content_types = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>'
        "</Types>"
    )
    relationships = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Target="/3D/3dmodel.model" Id="rel0" '
        'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>'
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", content_types)
        archive.writestr("_rels/.rels", relationships)
        archive.writestr("3D/3dmodel.model", model)
    return path


def check_mesh(tmp_path: Path, mesh: trimesh.Trimesh, *, declared_unit: Unit | None = None) -> GeometryReport:
    return check_model(
        write_stl(tmp_path / "part.stl", mesh),
        ModelFormat.STL_BINARY,
        limits=LIMITS,
        declared_unit=declared_unit,
    )


# --- verdicts on generated meshes ------------------------------------------------------------------------


def test_closed_cube_is_ok_with_its_volume_area_bbox_and_area_split(tmp_path: Path) -> None:
    report = check_mesh(tmp_path, cube(size=10.0))

    assert report.verdict is Verdict.OK
    assert report.reasons == []
    assert report.unit is Unit.MILLIMETER
    assert report.unit_source == "assumed"
    facts = report.facts
    assert facts is not None
    assert (facts.faces, facts.vertices, facts.bodies) == (12, 8, 1)
    assert facts.watertight
    assert facts.winding_consistent
    assert facts.volume_reliable
    assert facts.volume_mm3 == pytest.approx(1000.0)
    assert facts.area_mm2 == pytest.approx(600.0)
    assert facts.area_up_mm2 == pytest.approx(100.0)
    assert facts.area_down_mm2 == pytest.approx(100.0)
    assert facts.area_side_mm2 == pytest.approx(400.0)
    assert facts.bbox_min == pytest.approx((-5.0, -5.0, -5.0))
    assert facts.bbox_max == pytest.approx((5.0, 5.0, 5.0))
    assert facts.size == pytest.approx((10.0, 10.0, 10.0))
    assert facts.thinnest_extent_mm == pytest.approx(10.0)
    assert not facts.flat


def tilted_facet(degrees: float, *, facing_up: bool = True) -> trimesh.Trimesh:
    """One facet whose normal is ``degrees`` away from +z (or from -z when not ``facing_up``)."""
    rise = np.tan(np.radians(degrees))
    faces = [[0, 1, 2]] if facing_up else [[0, 2, 1]]
    return trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, rise], [0, 1, 0]], faces=faces, process=False)


@pytest.mark.parametrize(
    ("degrees", "facing_up", "part"),
    [
        (40.0, True, "up"),
        (50.0, True, "side"),
        (40.0, False, "down"),
        (50.0, False, "side"),
        (0.0, False, "down"),
    ],
)
def test_area_split_uses_45_degrees_from_vertical(degrees: float, facing_up: bool, part: str) -> None:
    facts = analyse(tilted_facet(degrees, facing_up=facing_up))

    split = {"up": facts.area_up_mm2, "down": facts.area_down_mm2, "side": facts.area_side_mm2}
    assert split[part] == pytest.approx(facts.area_mm2)
    assert sum(split.values()) == pytest.approx(facts.area_mm2)


def test_cube_missing_one_triangle_is_repairable_with_three_boundary_edges(tmp_path: Path) -> None:
    report = check_mesh(tmp_path, without_faces(cube(), [0]))

    assert report.verdict is Verdict.REPAIRABLE
    assert report.reasons == [Reason.NOT_WATERTIGHT]
    assert report.facts is not None
    assert report.facts.boundary_edges == 3
    assert not report.facts.volume_reliable


def test_cube_missing_a_whole_side_has_four_boundary_edges(tmp_path: Path) -> None:
    box = cube()
    side = np.flatnonzero(box.face_normals[:, 2] > 0.99).tolist()  # the two triangles of the top

    report = check_mesh(tmp_path, without_faces(box, side))

    assert report.facts is not None
    assert report.facts.boundary_edges == 4


def test_flipped_face_is_inconsistent_winding(tmp_path: Path) -> None:
    report = check_mesh(tmp_path, with_faces_flipped(cube(), [3]))

    assert report.verdict is Verdict.REPAIRABLE
    assert report.reasons == [Reason.INCONSISTENT_WINDING]
    assert report.facts is not None
    assert report.facts.inconsistent_edges == 3
    assert report.facts.watertight


def test_fully_inverted_cube_is_an_inverted_body(tmp_path: Path) -> None:
    inverted = cube()
    inverted.invert()

    report = check_mesh(tmp_path, inverted)

    assert report.reasons == [Reason.INVERTED_BODIES]
    assert report.facts is not None
    assert report.facts.inverted_bodies == 1
    assert report.facts.body_details[0].signed_volume_mm3 == pytest.approx(-1000.0)
    assert report.facts.volume_mm3 == pytest.approx(1000.0)


def test_inward_shell_inside_a_solid_is_a_cavity_not_an_inverted_body(tmp_path: Path) -> None:
    void = cube(size=4.0)
    void.invert()

    report = check_mesh(tmp_path, combined(cube(size=10.0), void))

    assert report.verdict is Verdict.OK
    assert report.facts is not None
    assert (report.facts.bodies, report.facts.cavities, report.facts.inverted_bodies) == (2, 1, 0)
    assert report.facts.volume_mm3 == pytest.approx(1000.0 - 64.0)


def test_two_separate_cubes_are_two_bodies(tmp_path: Path) -> None:
    report = check_mesh(tmp_path, combined(cube(), cube(centre=(20.0, 0.0, 0.0))))

    assert report.verdict is Verdict.OK
    assert report.facts is not None
    assert report.facts.bodies == 2
    assert report.facts.volume_mm3 == pytest.approx(2000.0)


def merged(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    vertices, faces = merge_coincident(np.asarray(mesh.triangles))
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False)


def cubes_sharing_an_edge() -> trimesh.Trimesh:
    return merged(combined(cube(centre=(5.0, 5.0, 5.0)), cube(centre=(15.0, 15.0, 5.0))))


def cubes_glued_face_to_face() -> trimesh.Trimesh:
    """Two cubes whose touching sides are the same two triangles, wound opposite ways (a mirror image)."""
    left = cube(centre=(-5.0, 0.0, 0.0))
    right = trimesh.Trimesh(
        vertices=left.vertices * [-1.0, 1.0, 1.0], faces=left.faces[:, ::-1], process=False
    )
    return merged(combined(left, right))


def test_solids_touching_along_an_edge_are_ok_with_a_warning(tmp_path: Path) -> None:
    report = check_mesh(tmp_path, cubes_sharing_an_edge())

    assert report.verdict is Verdict.OK
    assert report.warnings == [Reason.NON_MANIFOLD_EDGES]
    assert report.facts is not None
    assert (report.facts.non_manifold_edges, report.facts.bodies, report.facts.closed_bodies) == (1, 1, 1)
    assert not report.facts.watertight
    assert report.facts.volume_mm3 == pytest.approx(2000.0)


def test_solids_glued_face_to_face_have_duplicate_faces(tmp_path: Path) -> None:
    report = check_mesh(tmp_path, cubes_glued_face_to_face())

    assert report.verdict is Verdict.REPAIRABLE
    assert report.reasons == [Reason.DUPLICATE_FACES]
    assert report.warnings == [Reason.NON_MANIFOLD_EDGES]
    assert report.facts is not None
    assert report.facts.duplicate_faces == 2
    assert report.facts.volume_mm3 == pytest.approx(2000.0)


def test_unbalanced_non_manifold_edges_are_repairable(tmp_path: Path) -> None:
    box = cube()
    fin = trimesh.Trimesh(
        vertices=np.vstack([box.vertices, [[0.0, 0.0, 20.0]]]), faces=np.vstack([box.faces, [[0, 1, 8]]])
    )
    assert len(fin.faces) == 13

    report = check_mesh(tmp_path, fin)

    assert Reason.NON_MANIFOLD_EDGES in report.reasons
    assert report.facts is not None
    assert not report.facts.volume_reliable


def test_tiny_cube_is_rejected_as_units_suspect_with_a_metre_guess(tmp_path: Path) -> None:
    report = check_mesh(tmp_path, cube(size=0.01))

    assert report.verdict is Verdict.REJECTED
    assert report.reasons == [Reason.UNITS_SUSPECT]
    assert report.unit_guess is not None
    assert report.unit_guess.unit is Unit.METER
    assert report.unit_guess.size_mm == pytest.approx((10.0, 10.0, 10.0))
    assert "0.01" in report.unit_guess.reason


def test_inch_sized_cube_is_guessed_to_be_inches(tmp_path: Path) -> None:
    report = check_mesh(tmp_path, cube(size=2.0))

    assert report.unit_guess is not None
    assert report.unit_guess.unit is Unit.INCH


def test_declared_unit_scales_to_millimetres_and_is_not_second_guessed(tmp_path: Path) -> None:
    report = check_mesh(tmp_path, cube(size=1.0), declared_unit=Unit.INCH)

    assert report.verdict is Verdict.OK
    assert (report.unit, report.unit_source) == (Unit.INCH, "declared")
    assert report.unit_guess is None
    assert report.facts is not None
    assert report.facts.size == pytest.approx((25.4, 25.4, 25.4))
    assert report.facts.volume_mm3 == pytest.approx(25.4**3)


def test_flat_sheet_is_rejected(tmp_path: Path) -> None:
    sheet = trimesh.Trimesh(
        vertices=[[0, 0, 0], [50, 0, 0], [50, 50, 0], [0, 50, 0]], faces=[[0, 1, 2], [0, 2, 3]], process=False
    )

    report = check_mesh(tmp_path, sheet)

    assert report.verdict is Verdict.REJECTED
    assert Reason.FLAT_MESH in report.reasons
    assert report.facts is not None
    assert report.facts.thinnest_extent_mm == 0.0


def test_degenerate_and_duplicate_faces_are_counted() -> None:
    box = cube()
    vertices = np.vstack([box.vertices, [[0.0, 0.0, 5.0]]])  # a point on the top face
    faces = np.vstack(
        [
            box.faces,
            box.faces[:2],  # two duplicates, one of them wound the other way
            [[0, 0, 1]],  # a repeated vertex
            [[8, 8, 8]],
        ]
    )
    faces[13] = faces[13][::-1]

    facts = analyse(trimesh.Trimesh(vertices=vertices, faces=faces, process=False))

    assert facts.duplicate_faces == 2
    assert facts.degenerate_faces == 2


def test_zero_area_sliver_in_a_closed_mesh_is_only_a_warning(tmp_path: Path) -> None:
    """A closed cube whose T-junction is sealed by a zero-area facet, as CAD exports do."""
    report = check_mesh(tmp_path, sealed_t_junction_cube())

    assert report.verdict is Verdict.OK
    assert report.warnings == [Reason.DEGENERATE_FACES]
    assert report.facts is not None
    assert report.facts.degenerate_faces == 1
    assert report.facts.watertight


def sealed_t_junction_cube() -> trimesh.Trimesh:
    box = cube()
    faces = np.array(box.faces)
    first, second = _faces_sharing_an_edge(faces)
    a, b = _shared_edge_in_direction(faces[first], faces[second])
    vertices = np.vstack([box.vertices, (box.vertices[a] + box.vertices[b]) / 2.0])
    middle = len(box.vertices)
    apex = next(v for v in faces[second] if v not in (a, b))
    # The second facet used b -> a; it becomes b -> m -> a, and the sliver a -> m -> b seals the seam.
    replaced = np.array([[b, middle, apex], [middle, a, apex], [a, middle, b]])
    kept = np.delete(faces, second, axis=0)
    return trimesh.Trimesh(vertices=vertices, faces=np.vstack([kept, replaced]), process=False)


def _faces_sharing_an_edge(faces: NDArray[np.int64]) -> tuple[int, int]:
    for other in range(1, len(faces)):
        if len(set(faces[0].tolist()) & set(faces[other].tolist())) == 2:
            return 0, other
    raise AssertionError("a closed box has neighbouring faces")


def _shared_edge_in_direction(first: NDArray[np.int64], second: NDArray[np.int64]) -> tuple[int, int]:
    """(a, b) such that ``first`` uses a -> b (and so ``second`` uses b -> a)."""
    for index in range(3):
        a, b = int(first[index]), int(first[(index + 1) % 3])
        if a in second and b in second:
            return a, b
    raise AssertionError("the faces share no edge")


def test_report_is_versioned_and_json_serialisable(tmp_path: Path) -> None:
    report = check_mesh(tmp_path, without_faces(cube(size=0.01), [0]))

    dumped = json.loads(json.dumps(report.model_dump(mode="json")))

    assert dumped["version"] == REPORT_VERSION
    assert dumped["format"] == "stl-binary"
    assert dumped["reasons"] == ["units_suspect", "not_watertight"]
    assert dumped["unit_guess"]["unit"] == "meter"
    assert isinstance(dumped["facts"]["size"], list)
    assert GeometryReport.model_validate(dumped) == report


# --- binary STL ------------------------------------------------------------------------------------------


def test_binary_stl_with_solid_header_and_a_trailing_byte_keeps_every_face(tmp_path: Path) -> None:
    path = write_binary_stl(
        tmp_path / "odd.stl", np.asarray(cube().triangles), header=b"solid exported by CAD", trailing=b"\0"
    )

    loaded = load_model(path, ModelFormat.STL_BINARY, limits=LIMITS)

    assert len(loaded.mesh.faces) == 12
    assert len(loaded.mesh.vertices) == 8


def test_binary_stl_whose_header_claims_50m_faces_is_refused_without_loading(tmp_path: Path) -> None:
    path = write_binary_stl(tmp_path / "liar.stl", np.asarray(cube().triangles), declared=50_000_000)

    started = time.perf_counter()
    report = check_model(path, ModelFormat.STL_BINARY, limits=LIMITS)

    assert time.perf_counter() - started < 1.0  # loading 50M facets would take many seconds and 2.5 GB
    assert report.verdict is Verdict.REJECTED
    assert report.reasons == [Reason.TRUNCATED_MODEL]
    assert report.facts is None


def test_binary_stl_holding_more_records_than_the_cap_is_too_many_faces(tmp_path: Path) -> None:
    path = write_binary_stl(tmp_path / "big.stl", np.asarray(cube().triangles), declared=0)

    report = check_model(path, ModelFormat.STL_BINARY, limits=MeshLimits(max_faces=11))

    assert report.reasons == [Reason.TOO_MANY_FACES]


def test_binary_stl_with_nan_coordinates_is_rejected(tmp_path: Path) -> None:
    triangles = np.asarray(cube().triangles).copy()
    triangles[4, 1, 2] = np.nan

    report = check_model(
        write_binary_stl(tmp_path / "nan.stl", triangles), ModelFormat.STL_BINARY, limits=LIMITS
    )

    assert report.reasons == [Reason.NON_FINITE_COORDINATES]


def test_binary_stl_without_records_is_an_empty_mesh(tmp_path: Path) -> None:
    path = write_binary_stl(tmp_path / "empty.stl", np.empty((0, 3, 3)))

    report = check_model(path, ModelFormat.STL_BINARY, limits=LIMITS)

    assert report.verdict is Verdict.REJECTED
    assert report.reasons == [Reason.EMPTY_MESH]


def test_merge_joins_corners_that_differ_by_float_noise_only() -> None:
    triangles = np.asarray(cube().triangles).copy()
    triangles[0] += 1e-13  # one facet's corners off by 1e-13 mm, as CAD exports write -2.7e-16 for 0
    triangles[triangles == 0.0] = -0.0

    vertices, faces = merge_coincident(triangles)

    assert len(vertices) == 8
    assert analyse(trimesh.Trimesh(vertices=vertices, faces=faces, process=False)).watertight


def test_merge_keeps_corners_a_micrometre_apart() -> None:
    triangles = np.asarray(cube().triangles).copy()
    triangles[0, 0] += 1e-3

    vertices, _ = merge_coincident(triangles)

    assert len(vertices) == 9


def test_merge_survives_hash_collisions(monkeypatch: pytest.MonkeyPatch) -> None:
    # Zero multipliers hash every vertex alike: the exactness check must catch it and merge exactly anyway.
    monkeypatch.setattr(reading, "_HASH_MULTIPLIERS", np.zeros(3, dtype=np.uint64))

    vertices, faces = merge_coincident(np.asarray(cube().triangles))

    assert len(vertices) == 8
    np.testing.assert_allclose(vertices[faces], cube().triangles)


# --- ASCII STL and OBJ -----------------------------------------------------------------------------------


def ascii_stl(mesh: trimesh.Trimesh, *, name: str = "part") -> str:
    facets = "".join(
        "facet normal 0 0 0\nouter loop\n"
        + "".join(f"vertex {x} {y} {z}\n" for x, y, z in triangle)
        + "endloop\nendfacet\n"
        for triangle in mesh.triangles.tolist()
    )
    return f"solid {name}\n{facets}endsolid {name}\n"


def test_ascii_stl_with_two_solids_loads_both(tmp_path: Path) -> None:
    path = tmp_path / "two.stl"
    path.write_text(ascii_stl(cube(), name="a") + ascii_stl(cube(centre=(20.0, 0.0, 0.0)), name="b"))

    report = check_model(path, ModelFormat.STL_ASCII, limits=LIMITS)

    assert report.verdict is Verdict.OK
    assert report.facts is not None
    assert (report.facts.faces, report.facts.bodies) == (24, 2)


@pytest.mark.parametrize("chunk_bytes", [7, 64, 1000])
def test_ascii_stl_is_read_whole_across_chunk_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int
) -> None:
    monkeypatch.setattr(reading, "_SCAN_CHUNK_BYTES", chunk_bytes)
    path = tmp_path / "cube.stl"
    path.write_text(ascii_stl(cube()).upper())  # upper case, as some exporters write

    loaded = load_model(path, ModelFormat.STL_ASCII, limits=LIMITS)

    np.testing.assert_allclose(
        np.sort(loaded.mesh.triangles.reshape(-1)), np.sort(cube().triangles.reshape(-1))
    )
    assert analyse(loaded.mesh).watertight


@pytest.mark.parametrize(
    "damage",
    [("vertex 5.0", "vertex 5.0.0"), ("vertex -5.0 -5.0 5.0\n", "vertex -5.0 -5.0\n")],
    ids=["malformed number", "two coordinates"],
)
def test_ascii_stl_with_a_broken_vertex_is_a_parse_error(tmp_path: Path, damage: tuple[str, str]) -> None:
    path = tmp_path / "broken.stl"
    path.write_text(ascii_stl(cube()).replace(*damage, 1))

    report = check_model(path, ModelFormat.STL_ASCII, limits=LIMITS)

    assert report.reasons == [Reason.PARSE_ERROR]


def test_ascii_stl_with_cr_only_line_endings_is_a_parse_error(tmp_path: Path) -> None:
    path = tmp_path / "mac.stl"
    path.write_bytes(ascii_stl(cube()).replace("\n", "\r").encode())

    report = check_model(path, ModelFormat.STL_ASCII, limits=LIMITS)

    assert report.verdict is Verdict.REJECTED
    assert report.reasons == [Reason.PARSE_ERROR]
    assert report.detail is not None
    assert "CR-only" in report.detail


def test_ascii_stl_over_the_cap_is_refused_from_a_byte_scan(tmp_path: Path) -> None:
    path = tmp_path / "big.stl"
    path.write_text(ascii_stl(cube()))

    report = check_model(path, ModelFormat.STL_ASCII, limits=MeshLimits(max_faces=11))

    assert report.reasons == [Reason.TOO_MANY_FACES]


CUBE_OBJ_WITH_SEAMS_AND_NEGATIVE_INDICES = """\
# a 10 mm cube; each face has its own texture coordinates, so a default load splits every corner
v 0 0 0
v 10 0 0
v 10 10 0
v 0 10 0
v 0 0 10
v 10 0 10
v 10 10 10
v 0 10 10
vt 0 0
vt 1 0
vt 1 1
vt 0 1
f 1/1 4/2 3/3 2/4
f 5/1 6/2 7/3 8/4
f 1/1 2/2 6/3 5/4
f 2/1 3/2 7/3 6/4
f 3/1 4/2 8/3 7/4
f -8/1 -4/2 -1/3 -5/4
"""


def test_obj_seams_and_negative_indices_load_as_one_closed_body(tmp_path: Path) -> None:
    path = tmp_path / "cube.obj"
    path.write_text(CUBE_OBJ_WITH_SEAMS_AND_NEGATIVE_INDICES)

    report = check_model(path, ModelFormat.OBJ, limits=LIMITS)

    assert report.verdict is Verdict.OK
    assert report.facts is not None
    assert (report.facts.faces, report.facts.vertices, report.facts.bodies) == (12, 8, 1)
    assert report.facts.volume_mm3 == pytest.approx(1000.0)


def test_obj_never_opens_the_side_files_it_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "secret.mtl").write_text("newmtl x\nmap_Kd secret.png\n")
    path = tmp_path / "cube.obj"
    path.write_text("mtllib secret.mtl\nusemtl x\n" + CUBE_OBJ_WITH_SEAMS_AND_NEGATIVE_INDICES)
    opened: list[str] = []
    real_open = builtins.open

    def spy(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)

    report = check_model(path, ModelFormat.OBJ, limits=LIMITS)

    assert report.verdict is Verdict.OK
    assert not [name for name in opened if "secret" in name]


def test_obj_without_faces_is_an_empty_mesh(tmp_path: Path) -> None:
    path = tmp_path / "points.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")

    assert check_model(path, ModelFormat.OBJ, limits=LIMITS).reasons == [Reason.EMPTY_MESH]


def test_obj_over_the_cap_is_refused_from_a_byte_scan(tmp_path: Path) -> None:
    path = tmp_path / "cube.obj"
    path.write_text(CUBE_OBJ_WITH_SEAMS_AND_NEGATIVE_INDICES)

    report = check_model(path, ModelFormat.OBJ, limits=MeshLimits(max_faces=5))

    assert report.reasons == [Reason.TOO_MANY_FACES]


def test_obj_that_no_parser_reads_is_a_parse_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 99\n")

    report = check_model(path, ModelFormat.OBJ, limits=LIMITS)

    assert report.verdict is Verdict.REJECTED
    assert report.reasons == [Reason.PARSE_ERROR]


# --- 3MF -------------------------------------------------------------------------------------------------


def test_3mf_in_inches_is_scaled_to_millimetres(tmp_path: Path) -> None:
    path = write_3mf(tmp_path / "part.3mf", cube(size=1.0), unit="inch")

    report = check_model(path, ModelFormat.THREE_MF, limits=LIMITS)

    assert report.verdict is Verdict.OK
    assert (report.unit, report.unit_source) == (Unit.INCH, "3mf")
    assert report.facts is not None
    assert report.facts.size == pytest.approx((25.4, 25.4, 25.4))


def test_3mf_tiny_part_in_its_own_unit_is_not_second_guessed(tmp_path: Path) -> None:
    path = write_3mf(tmp_path / "part.3mf", cube(size=2.0), unit="millimeter")

    report = check_model(path, ModelFormat.THREE_MF, limits=LIMITS)

    assert report.verdict is Verdict.OK
    assert report.unit_guess is None


def test_declared_unit_wins_over_the_3mf_unit(tmp_path: Path) -> None:
    path = write_3mf(tmp_path / "part.3mf", cube(size=10.0), unit="inch")

    loaded = load_model(path, ModelFormat.THREE_MF, limits=LIMITS, declared_unit=Unit.MILLIMETER)

    assert (loaded.unit, loaded.unit_source) == (Unit.MILLIMETER, "declared")
    assert loaded.mesh.extents == pytest.approx((10.0, 10.0, 10.0))


def test_3mf_build_item_transform_is_applied(tmp_path: Path) -> None:
    # Row-vector convention (3MF Core 1.3, 3.3): scale x by 2, then move by (100, 0, 0).
    path = write_3mf(tmp_path / "part.3mf", cube(size=10.0), transform="2 0 0 0 1 0 0 0 1 100 0 0")

    report = check_model(path, ModelFormat.THREE_MF, limits=LIMITS)

    assert report.facts is not None
    assert report.facts.bbox_min == pytest.approx((90.0, -5.0, -5.0))
    assert report.facts.size == pytest.approx((20.0, 10.0, 10.0))


def test_3mf_without_a_build_is_invalid(tmp_path: Path) -> None:
    path = write_3mf(tmp_path / "part.3mf", cube())
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    parts["3D/3dmodel.model"] = parts["3D/3dmodel.model"].replace(b'<build><item objectid="1"/></build>', b"")
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)

    report = check_model(path, ModelFormat.THREE_MF, limits=LIMITS)

    assert report.verdict is Verdict.REJECTED
    assert report.reasons == [Reason.INVALID_3MF]


def test_3mf_over_the_cap_is_refused_before_lib3mf_reads_it(tmp_path: Path) -> None:
    path = write_3mf(tmp_path / "part.3mf", cube())

    report = check_model(path, ModelFormat.THREE_MF, limits=MeshLimits(max_faces=11))

    assert report.reasons == [Reason.TOO_MANY_FACES]


# --- robustness ----------------------------------------------------------------------------------------


def valid_cube_files(directory: Path) -> dict[ModelFormat, bytes]:
    return {
        ModelFormat.STL_BINARY: write_stl(directory / "cube.stl", cube()).read_bytes(),
        ModelFormat.STL_ASCII: ascii_stl(cube()).encode(),
        ModelFormat.OBJ: CUBE_OBJ_WITH_SEAMS_AND_NEGATIVE_INDICES.encode(),
        ModelFormat.THREE_MF: write_3mf(directory / "cube.3mf", cube()).read_bytes(),
    }


@settings(max_examples=60, deadline=None)
@given(
    fmt=st.sampled_from(list(ModelFormat)),
    cut=st.floats(min_value=0.0, max_value=1.0),
    patches=st.lists(st.tuples(st.floats(min_value=0.0, max_value=1.0), st.binary(min_size=1, max_size=8))),
)
def test_corrupted_files_always_get_a_report(
    fmt: ModelFormat, cut: float, patches: list[tuple[float, bytes]]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        data = bytearray(valid_cube_files(Path(directory))[fmt])
        for where, patch in patches:
            start = int(where * (len(data) - 1))
            data[start : start + len(patch)] = patch
        path = Path(directory) / "corrupt"
        path.write_bytes(bytes(data[: max(1, int(cut * len(data)))]))

        report = check_model(path, fmt, limits=LIMITS)

    assert report.verdict is Verdict.OK or report.reasons


# --- contract --------------------------------------------------------------------------------------------


def test_missing_file_raises_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="missing"):
        check_model(tmp_path / "missing.stl", ModelFormat.STL_BINARY, limits=LIMITS)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_faces"):
        MeshLimits(max_faces=0)


def test_analyse_refuses_non_finite_vertices() -> None:
    mesh = cube()
    vertices = np.array(mesh.vertices)
    vertices[0, 0] = np.inf

    with pytest.raises(ValueError, match="NaN or infinite"):
        analyse(trimesh.Trimesh(vertices=vertices, faces=mesh.faces, process=False))


def test_unit_scales_are_exact() -> None:
    assert {unit: unit.millimetres for unit in Unit} == {
        Unit.MILLIMETER: 1.0,
        Unit.CENTIMETER: 10.0,
        Unit.METER: 1000.0,
        Unit.INCH: 25.4,
        Unit.FOOT: 304.8,
        Unit.MICRON: 0.001,
    }
