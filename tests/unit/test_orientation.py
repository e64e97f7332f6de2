"""parts_catalog.orientation on generated parts whose best placement is known by hand."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import trimesh
from manifold3d import CrossSection, Manifold

from parts_catalog.orientation import Orientation, OrientationFailure, apply_orientation, choose_orientation

BED = (250.0, 210.0, 210.0)


def _box(x: float, y: float, z: float) -> trimesh.Trimesh:
    box: trimesh.Trimesh = trimesh.creation.box((x, y, z))
    return box


def _solid(solid: Manifold) -> trimesh.Trimesh:
    mesh = solid.to_mesh()
    return trimesh.Trimesh(
        vertices=np.asarray(mesh.vert_properties[:, :3], dtype=np.float64), faces=np.asarray(mesh.tri_verts)
    )


def _gallows() -> trimesh.Trimesh:
    """A post (10 x 60 x 50) with an arm (40 x 60 x 10) on top: the arm overhangs as modelled.

    Lying on the post's back (+x up) it is 40 tall with no overhang. Its convex hull's sloping facet (from the
    post's foot to the arm's tip) gives a lower base, 38 mm, but leaves the post's inner face overhanging.
    """
    return _solid(Manifold.cube((10, 60, 50)) + Manifold.cube((40, 60, 10)).translate((0, 0, 40)))


def _wedge() -> trimesh.Trimesh:
    """A right-angled wedge, legs 40 (x) and 20 (z), 30 wide (y): lowest on its sloping face (17.9 mm)."""
    triangle = CrossSection([np.array([[0.0, 0.0], [40.0, 0.0], [0.0, 20.0]])])
    # Extruded along z, then the profile's y is turned into z (a proper rotation: x, y, z -> x, -z, y).
    frame = np.array([[1, 0, 0, 0], [0, 0, -1, 30], [0, 1, 0, 0]], dtype=np.float64)
    return _solid(Manifold.extrude(triangle, 30.0).transform(frame))


def _placed_bounds(mesh: trimesh.Trimesh, orientation: Orientation) -> np.ndarray:
    return np.asarray(apply_orientation(mesh, orientation).bounds)


def test_a_tall_thin_box_lies_down_to_fit_a_low_printer() -> None:
    orientation = choose_orientation(_box(10, 10, 100), (200, 200, 50))

    assert orientation.fits
    assert orientation.height_mm == pytest.approx(10)
    assert sorted(orientation.size_mm) == pytest.approx([10, 10, 100])


def test_a_long_bar_that_fits_as_modelled_stays_as_modelled() -> None:
    orientation = choose_orientation(_box(220, 20, 20), BED)

    assert orientation.fits
    assert orientation.candidate == "axis:+z"
    assert orientation.size_mm == pytest.approx((220, 20, 20))


def test_a_footprint_too_long_for_the_bed_y_is_turned_about_z() -> None:
    mesh = _box(20, 230, 20)  # 230 > the bed's 210 in y, < its 250 in x

    orientation = choose_orientation(mesh, BED)

    assert orientation.fits
    assert orientation.candidate.endswith("+rz90")
    assert orientation.size_mm == pytest.approx((230, 20, 20))
    assert np.all(_placed_bounds(mesh, orientation)[1] <= np.array(BED) + 1e-6)


def test_a_part_larger_than_the_bed_every_way_does_not_fit() -> None:
    orientation = choose_orientation(_box(300, 300, 300), (250, 250, 250))

    assert not orientation.fits
    assert orientation.reason is OrientationFailure.TOO_LARGE_FOR_BED
    assert orientation.size_mm == pytest.approx((300, 300, 300))
    assert orientation.message is not None
    assert "300.0 x 300.0 x 300.0" in orientation.message


def test_an_overhanging_part_is_turned_so_nothing_overhangs() -> None:
    orientation = choose_orientation(_gallows(), BED)

    assert orientation.fits
    assert orientation.overhang_area_mm2 == pytest.approx(0)
    assert orientation.height_mm == pytest.approx(40)  # not the 38 mm hull base, which overhangs


def test_overhang_is_the_downward_area_not_resting_on_the_bed() -> None:
    # Three crossed 10 x 10 x 50 bars: on the 6 axes alike, the vertical bar's foot (100 mm2) rests on the
    # bed and the four horizontal arms' undersides (4 x 20 x 10) overhang.
    jack = _solid(
        Manifold.cube((50, 10, 10), center=True)
        + Manifold.cube((10, 50, 10), center=True)
        + Manifold.cube((10, 10, 50), center=True)
    )

    orientation = choose_orientation(jack, BED, max_hull_candidates=0)

    assert orientation.candidate == "axis:+z"
    assert orientation.overhang_area_mm2 == pytest.approx(4 * 20 * 10)


def test_an_l_bracket_is_not_stood_on_its_two_tips() -> None:
    # Legs 40 long and 6 thick: the hull facet joining the two tips is a lower base (32.5 mm) with nothing
    # but two edges on the bed. Lying on either leg it is 40 tall with a full leg (40 x 40) on the bed.
    bracket = _solid(Manifold.cube((40, 40, 6)) + Manifold.cube((6, 40, 40)))

    orientation = choose_orientation(bracket, BED)

    assert orientation.height_mm == pytest.approx(40)
    assert orientation.contact_area_mm2 == pytest.approx(40 * 40)
    assert orientation.overhang_area_mm2 == pytest.approx(0)


def test_a_wedge_rests_on_its_sloping_hull_facet() -> None:
    orientation = choose_orientation(_wedge(), BED)

    assert orientation.fits
    assert orientation.candidate.startswith("hull:")
    assert orientation.height_mm == pytest.approx(40 * 20 / np.hypot(40, 20))
    assert orientation.overhang_area_mm2 == pytest.approx(0)
    assert orientation.contact_area_mm2 == pytest.approx(np.hypot(40, 20) * 30)  # the whole sloping face


def test_a_tilted_box_is_stood_square_on_its_largest_face() -> None:
    mesh = _box(10, 30, 60)
    tilt_x, tilt_y = np.radians(35), np.radians(20)
    transform = np.eye(4)
    transform[:3, :3] = np.array(
        [[1, 0, 0], [0, np.cos(tilt_x), -np.sin(tilt_x)], [0, np.sin(tilt_x), np.cos(tilt_x)]]
    ) @ np.array([[np.cos(tilt_y), 0, np.sin(tilt_y)], [0, 1, 0], [-np.sin(tilt_y), 0, np.cos(tilt_y)]])
    mesh.apply_transform(transform)

    orientation = choose_orientation(mesh, BED)

    assert orientation.height_mm == pytest.approx(10)
    # The footprint is squared to the bed: its bounding box is the face itself, not a larger diagonal box.
    assert sorted(orientation.size_mm[:2]) == pytest.approx([30, 60])


def test_the_transform_puts_the_part_at_the_origin_resting_on_the_bed() -> None:
    mesh = _wedge()
    mesh.apply_translation((-50, 80, 33))

    orientation = choose_orientation(mesh, BED)
    bounds = _placed_bounds(mesh, orientation)

    assert bounds[0] == pytest.approx([0, 0, 0], abs=1e-9)
    assert bounds[1] == pytest.approx(orientation.size_mm)


def test_apply_orientation_leaves_the_input_untouched() -> None:
    mesh = _gallows()
    before = mesh.vertices.copy()

    apply_orientation(mesh, choose_orientation(mesh, BED))

    assert np.array_equal(mesh.vertices, before)


@pytest.mark.parametrize(
    "mesh",
    [
        pytest.param(
            trimesh.Trimesh(vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), dtype=np.int64)), id="empty"
        ),
        pytest.param(
            trimesh.Trimesh(
                vertices=[[0, 0, 0], [10, 0, 0], [0, 10, 0], [10, 10, 0]], faces=[[0, 1, 2], [1, 3, 2]]
            ),
            id="flat-square",
        ),
    ],
)
def test_a_mesh_without_thickness_is_flat(mesh: trimesh.Trimesh) -> None:
    orientation = choose_orientation(mesh, BED)

    assert not orientation.fits
    assert orientation.reason is OrientationFailure.FLAT_MESH


def test_the_result_round_trips_through_json() -> None:
    orientation = choose_orientation(_gallows(), BED)

    data = json.loads(orientation.model_dump_json())

    assert Orientation.model_validate(data) == orientation
    assert len(data["transform"]) == 4
    assert all(len(row) == 4 for row in data["transform"])


def test_a_100k_face_part_is_oriented_quickly() -> None:
    # A sphere is the worst case (every vertex on the convex hull), a finely divided cylinder the worst for
    # qhull (many coplanar, cocircular points). Measured ~0.4 s on 2 cores; the bound is loose.
    mesh = trimesh.util.concatenate(
        [
            trimesh.creation.icosphere(subdivisions=6, radius=30),  # 81,920 faces
            trimesh.creation.cylinder(radius=40, height=5, sections=5_000),  # 20,000 faces
        ]
    )
    assert isinstance(mesh, trimesh.Trimesh)
    started = time.perf_counter()

    orientation = choose_orientation(mesh, BED)

    assert time.perf_counter() - started < 2.0
    assert orientation.fits
