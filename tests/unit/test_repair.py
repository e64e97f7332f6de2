"""Tests for parts_catalog.repair: each defect is fixed, nothing is lost, and the input is never touched."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree  # type: ignore[import-untyped]

from parts_catalog.formats import ModelFormat
from parts_catalog.geometry import (
    GeometryReport,
    Reason,
    Verdict,
    analyse,
    check_model,
    load_model,
)
from parts_catalog.geometry.reading import merge_coincident
from parts_catalog.pipeline import check_and_repair
from parts_catalog.repair import RepairOutcome, RepairVerdict, repair
from parts_catalog.reports import REPAIRED_FORMAT
from tests.unit.test_geometry import (
    LIMITS,
    combined,
    cube,
    cubes_glued_face_to_face,
    cubes_sharing_an_edge,
    sealed_t_junction_cube,
    with_faces_flipped,
    without_faces,
)


def steps_changed(outcome: RepairOutcome) -> list[str]:
    return [step.name for step in outcome.report.steps if step.changed]


def assert_closed_and_outward(outcome: RepairOutcome, *, volume: float, relative: float) -> None:
    facts = analyse(outcome.mesh)
    assert outcome.report.verdict is RepairVerdict.OK
    assert outcome.report.reasons == []
    assert facts.watertight
    assert facts.winding_consistent
    assert facts.inverted_bodies == 0
    assert all(body.signed_volume_mm3 > 0.0 for body in facts.body_details)
    assert facts.volume_mm3 == pytest.approx(volume, rel=relative)
    assert outcome.report.after == facts


def sphere_with_irregular_hole() -> tuple[trimesh.Trimesh, float]:
    """An icosphere (r = 10 mm) with a non-convex, non-planar hole: two overlapping caps removed."""
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=10.0)
    centres = sphere.triangles_center
    hole = (np.linalg.norm(centres - [0.0, 0.0, 10.0], axis=1) < 4.5) | (
        np.linalg.norm(centres - [4.5, 1.0, 8.8], axis=1) < 3.0
    )
    return without_faces(sphere, np.flatnonzero(hole).tolist()), float(sphere.volume)


def cube_with_one_corner_pulled_off(offset: float) -> trimesh.Trimesh:
    """A 10 mm cube whose first facet has one corner moved by ``offset`` in x, y and z: a crack."""
    triangles = np.asarray(cube().triangles).copy()
    triangles[0, 0] += offset
    vertices, faces = merge_coincident(triangles)
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False)


def test_box_with_a_missing_side_is_closed() -> None:
    box = cube()
    top = np.flatnonzero(box.face_normals[:, 2] > 0.99).tolist()

    outcome = repair(without_faces(box, top))

    assert_closed_and_outward(outcome, volume=1000.0, relative=1e-9)
    assert steps_changed(outcome) == ["fill_holes"]


def test_box_missing_one_triangle_is_closed() -> None:
    outcome = repair(without_faces(cube(), [5]))

    assert_closed_and_outward(outcome, volume=1000.0, relative=1e-9)


def test_large_irregular_hole_is_closed_within_two_percent_of_the_original_volume() -> None:
    holed, original_volume = sphere_with_irregular_hole()
    assert analyse(holed).boundary_edges == 32  # 80 facets removed

    outcome = repair(holed)

    assert_closed_and_outward(outcome, volume=original_volume, relative=0.02)
    assert analyse(outcome.mesh).bodies == 1
    fill = next(step for step in outcome.report.steps if step.name == "fill_holes")
    assert fill.note is not None
    assert "1 holes by ear clipping" in fill.note


def test_flipped_faces_are_turned_back() -> None:
    outcome = repair(with_faces_flipped(cube(), [1, 5, 6]))

    assert_closed_and_outward(outcome, volume=1000.0, relative=1e-9)
    assert steps_changed(outcome) == ["fix_winding"]


def test_inverted_body_is_turned_outwards_and_both_bodies_are_kept() -> None:
    inverted = cube(centre=(30.0, 0.0, 0.0))
    inverted.invert()

    outcome = repair(combined(cube(), inverted))

    assert_closed_and_outward(outcome, volume=2000.0, relative=1e-9)
    assert analyse(outcome.mesh).bodies == 2


def test_wall_between_solids_glued_face_to_face_cancels_into_one_solid() -> None:
    outcome = repair(cubes_glued_face_to_face())

    assert_closed_and_outward(outcome, volume=2000.0, relative=1e-9)
    assert analyse(outcome.mesh).watertight
    step = next(step for step in outcome.report.steps if step.name == "drop_duplicate_faces")
    assert (step.faces_before, step.faces_after) == (24, 20)


def test_solids_touching_along_an_edge_are_left_alone() -> None:
    outcome = repair(cubes_sharing_an_edge())

    assert outcome.report.verdict is RepairVerdict.OK
    assert steps_changed(outcome) == []


def test_cavity_is_left_as_a_cavity() -> None:
    void = cube(size=4.0)
    void.invert()

    outcome = repair(combined(cube(), void))

    assert outcome.report.verdict is RepairVerdict.OK
    assert steps_changed(outcome) == []
    assert analyse(outcome.mesh).cavities == 1


def test_clean_mesh_comes_back_unchanged() -> None:
    original = cube()

    outcome = repair(original)

    assert outcome.report.verdict is RepairVerdict.OK
    assert steps_changed(outcome) == []
    assert not any(step.reverted for step in outcome.report.steps)
    assert outcome.report.before == outcome.report.after
    np.testing.assert_array_equal(outcome.mesh.faces, original.faces)
    np.testing.assert_array_equal(outcome.mesh.vertices, original.vertices)


def test_original_mesh_is_never_modified() -> None:
    broken = with_faces_flipped(without_faces(cube(), [0]), [3])
    vertices, faces = np.array(broken.vertices), np.array(broken.faces)

    outcome = repair(broken)

    assert outcome.mesh is not broken
    np.testing.assert_array_equal(broken.vertices, vertices)
    np.testing.assert_array_equal(broken.faces, faces)


def test_crack_from_a_pulled_off_corner_is_merged_back() -> None:
    outcome = repair(cube_with_one_corner_pulled_off(0.05))

    assert_closed_and_outward(outcome, volume=1000.0, relative=1e-9)
    assert steps_changed(outcome) == ["merge_near_vertices"]


def test_t_junction_is_split_shut() -> None:
    sealed = sealed_t_junction_cube()
    cracked = without_faces(sealed, [len(sealed.faces) - 1])  # drop the zero-area seal
    assert analyse(cracked).boundary_edges == 3

    outcome = repair(cracked)

    assert_closed_and_outward(outcome, volume=1000.0, relative=1e-9)
    assert steps_changed(outcome) == ["split_t_junctions"]


def test_dropping_a_sealing_sliver_is_reverted() -> None:
    outcome = repair(sealed_t_junction_cube())

    step = next(step for step in outcome.report.steps if step.name == "drop_degenerate_faces")
    assert step.reverted
    assert not step.changed
    assert step.note is not None
    assert "boundary" in step.note
    assert outcome.report.verdict is RepairVerdict.OK
    assert analyse(outcome.mesh).watertight


def test_stray_facet_is_dropped_and_reported() -> None:
    stray = trimesh.Trimesh(vertices=[[50, 0, 0], [51, 0, 0], [50, 1, 0]], faces=[[0, 1, 2]], process=False)

    outcome = repair(combined(cube(), stray))

    assert_closed_and_outward(outcome, volume=1000.0, relative=1e-9)
    step = next(step for step in outcome.report.steps if step.name == "drop_stray_faces")
    assert (step.changed, step.bodies_before, step.bodies_after) == (True, 2, 1)


def test_triangle_soup_fails_without_losing_its_facets() -> None:
    rng = np.random.default_rng(7)
    soup = trimesh.Trimesh(
        vertices=rng.random((30, 3)) * 10.0, faces=np.arange(30).reshape(10, 3), process=False
    )

    outcome = repair(soup)

    assert outcome.report.verdict is RepairVerdict.FAILED
    assert Reason.NOT_WATERTIGHT in outcome.report.reasons
    assert len(outcome.mesh.faces) == 10


def test_report_is_json_serialisable() -> None:
    outcome = repair(without_faces(cube(), [0]))

    dumped = json.loads(json.dumps(outcome.report.model_dump(mode="json")))

    assert dumped["verdict"] == "ok"
    assert [step["name"] for step in dumped["steps"]] == [
        "merge_near_vertices",
        "split_t_junctions",
        "drop_degenerate_faces",
        "drop_duplicate_faces",
        "drop_stray_faces",
        "fix_winding",
        "fill_holes",
        "fix_winding_after_fill",
    ]
    assert dumped["merge_tolerance_mm"] == pytest.approx(1e-5 * np.sqrt(300.0))


# --- far from the origin -----------------------------------------------------------------------------------


def write_obj(path: Path, mesh: trimesh.Trimesh) -> Path:
    """An OBJ with every coordinate's shortest round-trip repr: the float64 positions, exactly."""
    vertices = [f"v {x!r} {y!r} {z!r}" for x, y, z in mesh.vertices.tolist()]
    faces = [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in mesh.faces.tolist()]
    path.write_text("\n".join(vertices + faces) + "\n")
    return path


def odd_box() -> trimesh.Trimesh:
    # Extents that are no multiple of float32's spacing far out, so rounding would change them.
    box: trimesh.Trimesh = trimesh.creation.box(extents=(10.3, 7.7, 5.1))
    return box


def fine_sphere() -> trimesh.Trimesh:
    # 20480 facets on a 6 mm sphere: edges of about 0.1 mm, finer than float32's 0.0625 mm spacing at 1e6.
    sphere: trimesh.Trimesh = trimesh.creation.icosphere(subdivisions=5, radius=3.0)
    return sphere


@pytest.mark.parametrize("offset", [1e5, 1e6, 1e7])
@pytest.mark.parametrize("shape", [odd_box, fine_sphere])
def test_a_model_far_from_the_origin_keeps_its_geometry_through_repair(
    tmp_path: Path, shape: Callable[[], trimesh.Trimesh], offset: float
) -> None:
    intact = shape()
    intact.apply_translation(np.array([1.0, -0.7, 0.3]) * offset + [0.123, 0.456, 0.789])
    holed = without_faces(intact, [0])
    original = check_model(write_obj(tmp_path / "intact.obj", intact), ModelFormat.OBJ, limits=LIMITS)
    assert original.verdict is Verdict.OK
    assert original.facts is not None
    repaired_out = tmp_path / "repaired.stl"

    outcome = check_and_repair(
        write_obj(tmp_path / "holed.obj", holed),
        ModelFormat.OBJ.value,
        max_faces=LIMITS.max_faces,
        declared_unit=None,
        repaired_out=repaired_out,
    )

    assert outcome.report["verdict"] == "repairable"
    assert outcome.repaired
    assert outcome.printable
    after = GeometryReport.model_validate(outcome.report["repair"]["check"])  # the written file's check
    assert after.verdict is Verdict.OK
    assert after.facts is not None
    assert set(after.reasons) <= set(original.reasons)
    facts, was = after.facts, original.facts
    assert (facts.vertices, facts.faces, facts.bodies) == (was.vertices, was.faces, was.bodies)
    assert facts.watertight
    assert facts.winding_consistent
    assert facts.volume_mm3 == pytest.approx(was.volume_mm3, rel=1e-6)
    # The same shape, moved by what the report says: each vertex back where one of the original's was, one
    # for one, to float32 precision of the part's own size (about a micrometre at 10 mm).
    moved = np.array(outcome.report["repair"]["translation_mm"])
    written = load_model(repaired_out, REPAIRED_FORMAT, limits=LIMITS).mesh
    distance, nearest = cKDTree(intact.vertices).query(np.asarray(written.vertices) - moved)
    assert distance.max() < 1e-5
    assert len(np.unique(nearest)) == len(intact.vertices)
