"""What a mesh measures: topology, bodies, volume, areas, extent and defects (``analyse``).

A body is *closed* when every edge is used as often in one direction as in the other (two facets, or four
where solids touch): the surface is then the boundary of a volume, and its signed volume is exact.
"""

from __future__ import annotations

import math

import numpy as np
import trimesh
from pydantic import BaseModel, ConfigDict

from parts_catalog.geometry.arrays import FloatArray, IntArray
from parts_catalog.geometry.topology import (
    edge_census,
    inside_other_bodies,
    repeated_vertex_faces,
    vertex_bodies,
)

Vector3 = tuple[float, float, float]

# A mesh is flat when its thinnest extent is below this fraction of its bounding-box diagonal: float32
# coordinates (STL, 3MF) resolve about 6e-8 of their magnitude, so anything thinner is zero thickness.
_FLAT_RELATIVE = 1e-6

# "Up" and "down" facets: normal within 45 degrees of +z / -z (see MeshFacts).
_COS_45 = math.cos(math.radians(45.0))

_MAX_BODY_DETAILS = 100


class BodyFacts(BaseModel):
    """One connected body (facets connected through shared vertices)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    faces: int
    closed: bool  # every edge used as often in one direction as in the other (see the module docstring)
    signed_volume_mm3: float  # meaningful only when closed; negative = facets point inwards
    inverted: bool  # closed, negative and not inside another body: an inside-out solid
    cavity: bool  # closed, negative and inside another body: a void, correctly wound


class MeshFacts(BaseModel):
    """Everything ``analyse`` measures. Lengths in millimetres when the mesh came from ``load_model``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    faces: int
    vertices: int  # referenced by a face
    bodies: int
    closed_bodies: int
    inverted_bodies: int
    cavities: int
    watertight: bool  # no boundary and no non-manifold edges
    winding_consistent: bool  # every two-facet edge is used once in each direction
    boundary_edges: int  # edges of exactly one facet
    non_manifold_edges: int  # edges of more than two facets
    inconsistent_edges: int  # two-facet edges used twice in the same direction
    degenerate_faces: int  # a repeated vertex or zero area
    duplicate_faces: int  # facets beyond the first with the same three vertices (either winding)
    # Sum over closed bodies: inverted ones count positive, cavities negative. When some body is open, the raw
    # signed sum, which depends on where the origin is: ``volume_reliable`` says which.
    volume_mm3: float
    volume_reliable: bool
    area_mm2: float
    # Split by facet normal: "up" within 45 degrees of +z (top skins), "down" within 45 degrees of -z
    # (bottom skins and overhangs needing support: 45 degrees is the usual FDM self-supporting limit), the
    # rest "side".
    area_up_mm2: float
    area_down_mm2: float
    area_side_mm2: float
    bbox_min: Vector3
    bbox_max: Vector3
    size: Vector3
    thinnest_extent_mm: float  # extent along the direction of least spread (principal axis); 0 when flat
    flat: bool
    body_details: list[BodyFacts]  # the largest bodies by face count, at most _MAX_BODY_DETAILS


def analyse(mesh: trimesh.Trimesh) -> MeshFacts:
    """Measure ``mesh``: topology, bodies, volume, areas, bounding box and defects (see ``MeshFacts``).

    Vectorised: no Python loop per facet (one per inside-out body candidate, at most _MAX_NESTING_TESTS).

    Args:
        mesh: any triangle mesh; its arrays are read, never modified. Vertices should be merged (as from
            ``load_model``): unmerged copies look like holes.

    Returns:
        The facts; plain Python numbers only, JSON-serialisable.

    Raises:
        ValueError: a vertex coordinate is NaN or infinite.
    """
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
    referenced = np.zeros(len(vertices), dtype=np.bool_)
    referenced[faces.ravel()] = True
    used = vertices[referenced]
    if not np.isfinite(used).all():
        raise ValueError("the mesh has NaN or infinite vertex coordinates")
    if len(faces) == 0:
        return _empty_facts()

    low, high = used.min(axis=0), used.max(axis=0)
    centre = (low + high) / 2.0
    # Centred coordinates keep the per-facet volume terms small for parts far from the origin.
    triangles = np.take(vertices - centre, faces, axis=0)  # 3-5x faster than fancy indexing here
    cross = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    double_area = np.linalg.norm(cross, axis=1)
    face_volume = np.einsum("ij,ij->i", triangles[:, 0], cross) / 6.0
    up = cross[:, 2] > _COS_45 * double_area
    down = cross[:, 2] < -_COS_45 * double_area

    edges = edge_census(faces, len(vertices))
    body_count, face_body, vertex_body = vertex_bodies(faces, edges, len(vertices))
    # A body is closed when each of its edges is used as often in one direction as in the other.
    balanced = np.equal(edges.forward, edges.backward)
    closed = np.bincount(vertex_body[edges.low[~balanced]], minlength=body_count) == 0
    body_volume = np.bincount(face_body, weights=face_volume, minlength=body_count)
    body_faces = np.bincount(face_body, minlength=body_count)

    negative = np.flatnonzero(closed & (body_volume < 0.0))
    cavity = np.zeros(body_count, dtype=np.bool_)
    cavity[negative] = inside_other_bodies(triangles, face_body, closed, negative)
    inverted = closed & (body_volume < 0.0) & ~cavity

    all_closed = bool(closed.all())
    volume = (
        float(np.where(cavity, body_volume, np.abs(body_volume)).sum())
        if all_closed
        else float(body_volume.sum())
    )

    sorted_faces = np.sort(faces, axis=1)
    degenerate = repeated_vertex_faces(faces) | (double_area == 0.0)
    thinnest = _thinnest_extent(used)
    diagonal = float(np.linalg.norm(high - low))
    largest = np.argsort(-body_faces, kind="stable")[:_MAX_BODY_DETAILS]
    return MeshFacts(
        faces=len(faces),
        vertices=int(referenced.sum()),
        bodies=body_count,
        closed_bodies=int(closed.sum()),
        inverted_bodies=int(inverted.sum()),
        cavities=int(cavity.sum()),
        watertight=not bool(edges.boundary.any() or edges.non_manifold.any()),
        winding_consistent=not bool(edges.inconsistent.any()),
        boundary_edges=int(edges.boundary.sum()),
        non_manifold_edges=int(edges.non_manifold.sum()),
        inconsistent_edges=int(edges.inconsistent.sum()),
        degenerate_faces=int(degenerate.sum()),
        duplicate_faces=len(faces) - _unique_row_count(sorted_faces, len(vertices)),
        volume_mm3=volume,
        volume_reliable=all_closed,
        area_mm2=float(double_area.sum() / 2.0),
        area_up_mm2=float(double_area[up].sum() / 2.0),
        area_down_mm2=float(double_area[down].sum() / 2.0),
        area_side_mm2=float(double_area[~up & ~down].sum() / 2.0),
        bbox_min=_vector(low),
        bbox_max=_vector(high),
        size=_vector(high - low),
        thinnest_extent_mm=thinnest,
        flat=thinnest <= _FLAT_RELATIVE * diagonal,
        body_details=[
            BodyFacts(
                faces=int(body_faces[body]),
                closed=bool(closed[body]),
                signed_volume_mm3=float(body_volume[body]),
                inverted=bool(inverted[body]),
                cavity=bool(cavity[body]),
            )
            for body in largest
        ],
    )


def _empty_facts() -> MeshFacts:
    zero = (0.0, 0.0, 0.0)
    return MeshFacts(
        faces=0,
        vertices=0,
        bodies=0,
        closed_bodies=0,
        inverted_bodies=0,
        cavities=0,
        watertight=False,
        winding_consistent=True,
        boundary_edges=0,
        non_manifold_edges=0,
        inconsistent_edges=0,
        degenerate_faces=0,
        duplicate_faces=0,
        volume_mm3=0.0,
        volume_reliable=False,
        area_mm2=0.0,
        area_up_mm2=0.0,
        area_down_mm2=0.0,
        area_side_mm2=0.0,
        bbox_min=zero,
        bbox_max=zero,
        size=zero,
        thinnest_extent_mm=0.0,
        flat=True,
        body_details=[],
    )


def _vector(values: FloatArray) -> Vector3:
    return (float(values[0]), float(values[1]), float(values[2]))


def _thinnest_extent(points: FloatArray) -> float:
    """Extent of the points along their least-spread principal axis: 0 for a planar (flat) mesh."""
    centred = points - points.mean(axis=0)
    _, axes = np.linalg.eigh(centred.T @ centred)
    projected = centred @ axes[:, 0]  # eigh sorts eigenvalues ascending
    return float(projected.max() - projected.min())


def _unique_row_count(rows: IntArray, bound: int) -> int:
    """Distinct rows of a (n, 3) array of ints in [0, bound)."""
    if bound < 2**21:  # three 21-bit fields pack exactly into one int64
        # Sort and count changes: numpy 2's hash-based np.unique is 10x slower here (1.6 s at 1.3M rows).
        keys = np.sort((rows[:, 0] << 42) | (rows[:, 1] << 21) | rows[:, 2])
        return int(np.count_nonzero(keys[1:] != keys[:-1])) + 1
    return int(np.unique(rows, axis=0).shape[0])
