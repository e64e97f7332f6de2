"""Choose how a part sits on the bed: low, with little overhang, and inside the build volume.

Candidates are directions that could point down onto the bed:

- the 6 axis-aligned ones, labelled by the model axis that ends up pointing UP (``axis:+z`` is the part as
  modelled, ``axis:-z`` upside down, ``axis:+x`` lying with its +x side up, ...). They keep the model's own
  XY axes, since CAD parts are usually drawn square to them;
- the facets of the convex hull (coplanar hull triangles merged), largest area first, up to
  ``max_hull_candidates``; each is laid on the bed (``hull:0`` is the largest) and turned about Z so that its
  footprint's minimum-area bounding rectangle is square to the bed. A hull facet is the only kind of plane a
  rigid part can rest on stably, so these are where non-axis bases come from.

A hull facet parallel to an axis candidate is the same orientation and is dropped. For every candidate a 90
degree turn about Z is used when only the turned footprint fits the bed (label suffix ``+rz90``).

Among the candidates that fit, the one with the lowest score wins (ties: first in the order above)::

    score = height / lowest_height
            + OVERHANG_WEIGHT * overhang_area / surface_area
            + CONTACT_WEIGHT * (1 - bed_contact_area / largest_bed_contact_area)

Height is normalised by the lowest candidate's (fitting or not): print time and the risk of a tall part
toppling grow with it. The overhang is normalised by the part's surface area rather than by the best
candidate's overhang, which is often zero. Overhang faces need support (material, time, removal, a rough
surface) where height only costs time, so they weigh double (``OVERHANG_WEIGHT = 2``): supporting 10 % of the
surface is worth 20 % of height. Bed contact (faces lying on the bed) is what holds the part down; a hull
facet can span two tips of a part that then stands on edges or points (an L bracket set up as a V) and comes
loose. Losing all contact weighs as half the lowest height (``CONTACT_WEIGHT = 0.5``): less than overhang,
because a brim can make up for a small footprint and nothing makes up for missing support.

The returned transform rotates the part and translates it so that its bounding box spans
``[0, x] x [0, y] x [0, z]``: lowest point at z=0 and the XY footprint starting at the bed's origin corner
(a slicer adapter then centres it).

Everything is vectorised over faces; the only Python loops run over candidates.
"""

from __future__ import annotations

import math
from enum import StrEnum

import numpy as np
import trimesh
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from scipy.spatial import ConvexHull, QhullError  # type: ignore[import-untyped]

OVERHANG_WEIGHT = 2.0  # see the module docstring
CONTACT_WEIGHT = 0.5
# A face this close above the lowest point is squashed onto the bed by the first layer (a quarter of a
# 0.2 mm first layer), so it is bed contact rather than overhang.
BED_CONTACT_TOLERANCE_MM = 0.05
# A part thinner than this in its thinnest direction cannot be printed (a twentieth of a 0.2 mm layer), and
# PrusaSlicer aborts on it.
FLAT_THICKNESS_MM = 0.01
# Slack on the bed-fit comparisons, so a part exactly as large as the bed (float noise of a rotation) fits.
_FIT_TOLERANCE_MM = 1e-6
# Hull triangles whose unit normals agree to 6 decimals lie in one facet: on a convex hull only one supporting
# plane has a given normal (a 1e-6 rad tilt moves the far end of a 200 mm facet by 0.2 micrometres).
_FACET_NORMAL_DECIMALS = 6
# Faces x candidates evaluated per numpy batch: bounds temporary memory (~3 float64 arrays of this size).
_BATCH_ELEMENTS = 2_000_000
# Footprint edge directions tried when squaring a hull-facet candidate to the bed (see _square_footprint).
_MAX_FOOTPRINT_ANGLES = 64

_AXIS_UP: dict[str, NDArray[np.float64]] = {
    # Proper rotations (det +1) whose third row is the model axis that ends up pointing up.
    "axis:+z": np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64),
    "axis:-z": np.array([[1, 0, 0], [0, -1, 0], [0, 0, -1]], dtype=np.float64),
    "axis:+x": np.array([[0, 0, -1], [0, 1, 0], [1, 0, 0]], dtype=np.float64),
    "axis:-x": np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], dtype=np.float64),
    "axis:+y": np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=np.float64),
    "axis:-y": np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=np.float64),
}
_TURN_90 = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float64)


class OrientationFailure(StrEnum):
    TOO_LARGE_FOR_BED = "too_large_for_bed"  # no candidate fits; the result is the one that comes closest
    FLAT_MESH = "flat_mesh"  # no faces, or thinner than FLAT_THICKNESS_MM in some direction


class Orientation(BaseModel):
    """The chosen placement of a part on the bed (JSON-serialisable).

    ``transform`` is a 4x4 homogeneous matrix (rotation, then translation) that puts the part's bounding box
    at ``[0, size_x] x [0, size_y] x [0, height]``. When ``fits`` is false, ``reason`` says why and the
    other fields describe the candidate that comes closest (smallest ratio of size to bed on its worst axis).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    fits: bool
    transform: list[list[float]]
    size_mm: tuple[float, float, float]
    height_mm: float
    overhang_area_mm2: float = Field(ge=0)
    contact_area_mm2: float = Field(ge=0)  # faces lying on the bed
    candidate: str  # "axis:+z", "hull:3", "hull:0+rz90", or "none" for a flat mesh
    candidates_evaluated: int = Field(ge=0)  # directions tried (each with its 90 degree turn)
    reason: OrientationFailure | None = None
    message: str | None = None


def choose_orientation(
    mesh: trimesh.Trimesh,
    build_volume: tuple[float, float, float],
    *,
    max_hull_candidates: int = 24,
    overhang_angle_deg: float = 45.0,
) -> Orientation:
    """Choose the placement of ``mesh`` (millimetres) on a printer of ``build_volume`` (x, y, z).

    Args:
        mesh: the part in millimetres, wound so that face normals point outwards (overhangs are read from
            them); it is not modified.
        build_volume: bed x and y and the height available, in millimetres.
        max_hull_candidates: how many convex-hull facets (largest first) to try besides the 6 axes.
        overhang_angle_deg: a downward face tilted more than this from vertical needs support; 45 degrees is
            the usual FDM rule (and PrusaSlicer's and Cura's default support threshold).

    Returns:
        The best fitting placement; ``fits=False`` with ``reason`` ``too_large_for_bed`` when no candidate
        fits (the closest one is described), or ``flat_mesh`` when there is nothing to stand up.
    """
    if len(mesh.faces) == 0:
        return _flat(mesh, "the mesh has no faces")
    vertices = np.asarray(mesh.vertices, dtype=np.float64)[np.unique(mesh.faces)]
    try:
        # Joggled input ("QJ") keeps qhull fast on the many coplanar, cocircular points of tessellated CAD
        # (10k points on a cylinder: 1.5 s without it, 0.03 s with it) and is deterministic (fixed seed).
        # Only which points are on the hull is taken from it: facet planes are recomputed from the originals.
        hull = ConvexHull(vertices, qhull_options="QJ")
    except QhullError:
        return _flat(mesh, "the mesh has no volume: all its vertices lie in one plane")

    labels, rotations = _candidates(vertices, hull, max_hull_candidates)
    hull_points = vertices[hull.vertices]
    z = hull_points @ rotations[:, 2, :].T  # (n, k): height of every hull point for every candidate
    heights = z.max(axis=0) - z.min(axis=0)
    if heights.min() < FLAT_THICKNESS_MM:
        return _flat(mesh, f"the mesh is thinner than {FLAT_THICKNESS_MM} mm")
    overhang, contact = _bed_areas(mesh, rotations[:, 2, :], math.sin(math.radians(overhang_angle_deg)))
    score = (
        heights / heights.min()
        + OVERHANG_WEIGHT * overhang / max(float(mesh.area), 1e-12)
        + CONTACT_WEIGHT * (1 - contact / max(float(contact.max()), 1e-12))
    )

    # The score does not depend on the turn about Z, so footprints are computed lazily, best score first.
    bed = np.asarray(build_volume, dtype=np.float64) + _FIT_TOLERANCE_MM
    closest: tuple[float, int, str, NDArray[np.float64]] | None = None
    for k in np.argsort(score, kind="stable").tolist():
        rotation = rotations[k] if labels[k] in _AXIS_UP else _square_footprint(hull_points, rotations[k])
        size = np.ptp(hull_points @ rotation.T, axis=0)
        for label, turned, extent in (
            (labels[k], rotation, size),
            (labels[k] + "+rz90", _TURN_90 @ rotation, size[[1, 0, 2]]),
        ):
            if np.all(extent <= bed):
                return _placed(
                    hull_points,
                    turned,
                    label,
                    overhang=overhang[k],
                    contact=contact[k],
                    evaluated=len(labels),
                )
            ratio = float((extent / bed).max())  # how much it would have to shrink to fit, on its worst axis
            if closest is None or ratio < closest[0]:
                closest = (ratio, k, label, turned)
    assert closest is not None  # the 6 axis candidates are always there
    _, k, label, rotation = closest
    result = _placed(
        hull_points, rotation, label, overhang=overhang[k], contact=contact[k], evaluated=len(labels)
    )
    shown = " x ".join(f"{v:.1f}" for v in result.size_mm)
    bed_shown = " x ".join(f"{v:.1f}" for v in build_volume)
    return result.model_copy(
        update={
            "fits": False,
            "reason": OrientationFailure.TOO_LARGE_FOR_BED,
            "message": f"smallest achievable size {shown} mm does not fit the {bed_shown} mm build volume",
        }
    )


def apply_orientation(mesh: trimesh.Trimesh, orientation: Orientation) -> trimesh.Trimesh:
    """A copy of ``mesh`` moved by ``orientation.transform``; the input is left untouched."""
    oriented = mesh.copy()
    oriented.apply_transform(np.asarray(orientation.transform, dtype=np.float64))
    return oriented


def _candidates(
    vertices: NDArray[np.float64], hull: ConvexHull, max_hull_candidates: int
) -> tuple[list[str], NDArray[np.float64]]:
    """Labels and (k, 3, 3) rotations: the 6 axes, then hull facets by decreasing area."""
    labels = list(_AXIS_UP)
    rotations = list(_AXIS_UP.values())
    axis_down = -np.array([r[2] for r in rotations])

    # Plane normals from the original (not joggled) corners, signed outward like qhull's.
    corners = vertices[hull.simplices]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    doubled_area = np.linalg.norm(cross, axis=1)
    keep = doubled_area > 0
    normals = cross[keep] / doubled_area[keep, None]
    normals *= np.sign(np.einsum("ij,ij->i", normals, hull.equations[keep, :3]))[:, None]
    keys = np.round(normals, _FACET_NORMAL_DECIMALS)
    _, first, facet_of = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    facet_areas = np.bincount(facet_of.ravel(), weights=0.5 * doubled_area[keep], minlength=len(first))
    order = np.argsort(-facet_areas, kind="stable")[:max_hull_candidates]
    for rank, facet in enumerate(order):
        down = normals[first[facet]]  # outward normal: the direction that goes onto the bed
        if (axis_down @ down).max() > 1.0 - 1e-9:
            continue
        labels.append(f"hull:{rank}")
        rotations.append(_lay_down(down))
    return labels, np.array(rotations)


def _lay_down(down: NDArray[np.float64]) -> NDArray[np.float64]:
    """A rotation taking the unit vector ``down`` to -Z (its turn about Z is arbitrary: squared later)."""
    up = -down
    # Any unit vector perpendicular to ``up``: cross it with the axis it is least aligned with.
    side = np.cross(up, np.eye(3)[int(np.argmin(np.abs(up)))])
    side /= np.linalg.norm(side)
    # Rows (side, up x side, up) are orthonormal with row0 x row1 = row2: a proper rotation.
    return np.array([side, np.cross(up, side), up])


def _square_footprint(points: NDArray[np.float64], tilt: NDArray[np.float64]) -> NDArray[np.float64]:
    """``tilt`` followed by the turn about Z that squares the footprint of ``points`` to the X and Y axes.

    The minimum-area bounding rectangle of the footprint has a side along an edge of the footprint's convex
    hull (rotating calipers), so only those edge directions are tried.
    """
    flat = (points @ tilt.T)[:, :2]
    try:
        outline = flat[ConvexHull(flat).vertices]
    except QhullError:  # a degenerate footprint (a line): any turn is as good
        return tilt
    edges = np.roll(outline, -1, axis=0) - outline
    # A finely tessellated curve has thousands of outline edges, each nearly as good as its neighbours: only
    # the longest ones are tried, which keeps the work at (edges x outline points) <= a few million.
    longest = np.argsort(-np.einsum("ij,ij->i", edges, edges), kind="stable")[:_MAX_FOOTPRINT_ANGLES]
    angles = np.unique(np.mod(np.arctan2(edges[longest, 1], edges[longest, 0]), np.pi / 2))
    cos, sin = np.cos(angles), np.sin(angles)
    # Rotating by -angle lays an edge along X; the outline's extents in that frame, for all angles at once.
    x = outline[:, 0][None, :] * cos[:, None] + outline[:, 1][None, :] * sin[:, None]
    y = -outline[:, 0][None, :] * sin[:, None] + outline[:, 1][None, :] * cos[:, None]
    area = (x.max(axis=1) - x.min(axis=1)) * (y.max(axis=1) - y.min(axis=1))
    best = int(np.argmin(area))
    c, s = float(cos[best]), float(sin[best])
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]]) @ tilt


def _bed_areas(
    mesh: trimesh.Trimesh, ups: NDArray[np.float64], threshold: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Overhang and bed contact areas for each candidate ``up`` direction (model frame), batched.

    A face lies on the bed when all its corners are within BED_CONTACT_TOLERANCE_MM of the part's lowest
    point. A face overhangs when its normal points down more steeply than ``-threshold`` (tilted more than
    the overhang angle from vertical) and it does not lie on the bed.
    """
    faces = np.asarray(mesh.faces)
    normals = np.asarray(mesh.face_normals, dtype=np.float64)
    areas = np.asarray(mesh.area_faces, dtype=np.float64)
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    batch = max(1, _BATCH_ELEMENTS // max(len(faces), 1))
    overhang, contact = np.empty(len(ups)), np.empty(len(ups))
    for start in range(0, len(ups), batch):
        up = ups[start : start + batch].T  # (3, b)
        z = vertices @ up  # (v, b)
        corners = z[faces[:, 0]], z[faces[:, 1]], z[faces[:, 2]]
        top = np.maximum(np.maximum(corners[0], corners[1]), corners[2])  # (f, b)
        lowest = np.minimum(np.minimum(corners[0], corners[1]), corners[2]).min(axis=0)  # (b,)
        on_bed = top <= lowest + BED_CONTACT_TOLERANCE_MM
        downward = (normals @ up) < -threshold
        overhang[start : start + batch] = areas @ (downward & ~on_bed)
        contact[start : start + batch] = areas @ on_bed
    return overhang, contact


def _placed(
    hull_points: NDArray[np.float64],
    rotation: NDArray[np.float64],
    label: str,
    *,
    overhang: np.float64,
    contact: np.float64,
    evaluated: int,
) -> Orientation:
    """The placement for ``rotation``: translated so the bounding box starts at the origin."""
    points = hull_points @ rotation.T
    low = points.min(axis=0)
    size = points.max(axis=0) - low
    transform = np.eye(4)
    transform[:3, :3] = rotation
    transform[:3, 3] = -low
    return Orientation(
        fits=True,
        transform=transform.tolist(),
        size_mm=(float(size[0]), float(size[1]), float(size[2])),
        height_mm=float(size[2]),
        overhang_area_mm2=float(overhang),
        contact_area_mm2=float(contact),
        candidate=label,
        candidates_evaluated=evaluated,
    )


def _flat(mesh: trimesh.Trimesh, message: str) -> Orientation:
    """A non-result for a mesh with nothing to stand up: no rotation, bounding box moved to the origin."""
    transform = np.eye(4)
    size = (0.0, 0.0, 0.0)
    if len(mesh.vertices):
        bounds = np.asarray(mesh.bounds, dtype=np.float64)
        transform[:3, 3] = -bounds[0]
        extent = bounds[1] - bounds[0]
        size = (float(extent[0]), float(extent[1]), float(extent[2]))
    return Orientation(
        fits=False,
        transform=transform.tolist(),
        size_mm=size,
        height_mm=size[2],
        overhang_area_mm2=0.0,
        contact_area_mm2=0.0,
        candidate="none",
        candidates_evaluated=0,
        reason=OrientationFailure.FLAT_MESH,
        message=message,
    )
