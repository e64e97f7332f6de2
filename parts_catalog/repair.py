"""Repair a mesh for printing, one checked step at a time, and say exactly what each step did.

``repair`` runs these steps in order on a copy of the mesh, re-analysing (``geometry.analyse``) after each
step that changed something:

1. ``merge_near_vertices``: close cracks. Boundary vertices closer than ``MERGE_RELATIVE`` x the bounding-box
   diagonal merge; so do the ends of two boundary edges that run opposite each other within
   ``EDGE_MATCH_FRACTION`` of their own length (admesh's "nearby" check: the corpus's ``*nearby-bad*`` and
   ``*exact-bad*`` blocks). Only vertices on boundary edges ever move, so closed regions are never touched.
2. ``split_t_junctions``: a boundary vertex lying on another boundary edge splits that edge's facet, so
   both sides of a T-junction crack match.
3. ``drop_degenerate_faces``: facets with a repeated vertex or zero area.
4. ``drop_duplicate_faces``: facets on the same three vertices. Two wound opposite ways cancel, both go (the
   wall between two solids that touch face to face); copies wound alike collapse to one.
5. ``drop_stray_faces``: facets that share no edge with any other facet (admesh "remove unconnected"); each
   is a body of its own, and the step reports how many bodies it removed.
6. ``fix_winding``: make every patch (facets joined by two-facet edges) consistently wound, then point it
   outwards: a closed patch by the sign of its volume (a closed patch inside another one keeps its negative
   volume: it is a cavity), an open one by the orientation of most of its area.
7. ``fill_holes``: walk every boundary loop (loops that touch at a vertex are split there) and triangulate it
   by ear clipping on its best-fit plane, or by a fan around its centroid when the projected loop is not a
   simple polygon or is long (``EAR_CLIP_MAX_VERTICES``). New facets are wound against the loop's existing
   half-edges, so winding stays consistent. A fill that would only close a zero-volume sheet (a stray facet
   capped by its own mirror image) is left out.
8. ``fix_winding_after_fill``: step 6 again, so that bodies closed by step 7 point outwards.

A step is skipped when the facts show nothing for it to do (no boundary edges for steps 1, 2, 5 and 7, and
so on). It is reverted, and the reason recorded, when it makes things worse: more boundary plus non-manifold
edges than before, winding that was consistent and is not, a closed body opened, fewer bodies (except steps 1
and 5, whose purpose that is), no facets left, or a volume change beyond ``volume_tolerance`` on a mesh whose
volume was reliable before and after (dropping zero-area slivers opens watertight CAD meshes:
GEOMETRY-AND-SLICING.md).

The verdict is ``ok`` when the result has none of ``geometry.geometry_reasons``'s codes (its warnings, such
as ``degenerate_faces``, do not count), ``failed`` otherwise, with the codes that remain. Non-manifold edges
are reported, never "fixed": splitting them needs a decision about which facets belong together.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np
import trimesh
from pydantic import BaseModel, ConfigDict
from scipy.sparse import coo_matrix  # type: ignore[import-untyped]
from scipy.sparse.csgraph import connected_components  # type: ignore[import-untyped]
from scipy.spatial import cKDTree  # type: ignore[import-untyped]

from parts_catalog.geometry.arrays import BoolArray, FloatArray, IntArray
from parts_catalog.geometry.check import geometry_reasons
from parts_catalog.geometry.facts import MeshFacts, analyse
from parts_catalog.geometry.reasons import Reason
from parts_catalog.geometry.topology import (
    edge_census,
    half_edges,
    inside_other_bodies,
    repeated_vertex_faces,
    vertex_bodies,
)

__all__ = [
    "REPAIR_REPORT_VERSION",
    "RepairOutcome",
    "RepairReport",
    "RepairStep",
    "RepairVerdict",
    "repair",
]

REPAIR_REPORT_VERSION: Final = 1

# Boundary vertices closer than this fraction of the bounding-box diagonal are one vertex split by float noise
# or a sloppy exporter (1e-5: 1 micrometre on a 100 mm part, below any printer's resolution).
MERGE_RELATIVE = 1e-5
# Two boundary edges running opposite each other with both ends within this fraction of the shorter edge's
# length are the two sides of a crack (admesh's nearby check; the corpus's nearby-bad block is off by 4 % of
# its edge). Only boundary edges are matched, so thin but closed features are never pinched.
EDGE_MATCH_FRACTION = 0.1
# Ear clipping is O(n^2) per loop (plus an O(n^2) simplicity test); longer loops get a centroid fan.
EAR_CLIP_MAX_VERTICES = 512
# Candidate x boundary-edge pairs tested at once when looking for T-junctions (bounds the temporaries to
# a few tens of MB).
_PAIR_BLOCK_ELEMENTS = 1_000_000
# A body closed by filling whose volume is below this fraction of the mesh's bounding-box diagonal cubed is a
# sheet capped by its own mirror image (zero volume), not a solid.
SHEET_VOLUME_RELATIVE = 1e-9


class RepairVerdict(StrEnum):
    OK = "ok"
    FAILED = "failed"


class RepairStep(BaseModel):
    """One step as it was kept: ``*_after`` equal ``*_before`` when it changed nothing or was reverted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    faces_before: int
    faces_after: int
    bodies_before: int
    bodies_after: int
    volume_before: float
    volume_after: float
    watertight_after: bool
    changed: bool
    reverted: bool = False
    note: str | None = None  # what the step did, or why it was reverted


class RepairReport(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = REPAIR_REPORT_VERSION
    before: MeshFacts
    after: MeshFacts
    steps: list[RepairStep]
    verdict: RepairVerdict
    reasons: list[Reason]  # geometry codes still present after repair; empty when ok
    merge_tolerance_mm: float  # MERGE_RELATIVE x the bounding-box diagonal, in the mesh's units
    elapsed_ms: float


@dataclass(frozen=True, slots=True)
class RepairOutcome:
    mesh: trimesh.Trimesh  # a new mesh; the input is never modified
    report: RepairReport


@dataclass(frozen=True, slots=True)
class _Change:
    vertices: FloatArray
    faces: IntArray
    note: str


@dataclass(frozen=True, slots=True)
class _Step:
    name: str
    run: Callable[[FloatArray, IntArray, float], _Change | None]  # (vertices, faces, diagonal)
    # Whether the facts show anything for the step to do; it is skipped (unchanged) otherwise, which saves
    # its half-edge sort on clean meshes.
    needed: Callable[[MeshFacts], bool]
    changes_bodies: bool = False  # joining or dropping bodies is the point of the step


def repair(mesh: trimesh.Trimesh, *, volume_tolerance: float = 0.01) -> RepairOutcome:
    """Repair a copy of ``mesh`` (see the module docstring for the steps and when one is reverted).

    Args:
        mesh: the mesh to repair, in any unit; read, never modified.
        volume_tolerance: largest relative volume change a step may make to a mesh whose volume is reliable
            (closed, consistently wound) before and after it.

    Returns:
        The repaired mesh (unreferenced vertices dropped) and a report of every step.

    Raises:
        ValueError: a vertex coordinate is NaN or infinite, or ``volume_tolerance`` is negative.
    """
    if volume_tolerance < 0.0:
        raise ValueError(f"volume_tolerance must not be negative: {volume_tolerance}")
    started = time.perf_counter()
    vertices = np.array(mesh.vertices, dtype=np.float64)
    faces = np.array(mesh.faces, dtype=np.int64).reshape(-1, 3)
    before = facts = analyse(mesh)
    diagonal = float(np.linalg.norm(np.subtract(facts.bbox_max, facts.bbox_min)))
    records: list[RepairStep] = []
    for step in _STEPS:
        change = step.run(vertices, faces, diagonal) if facts.faces and step.needed(facts) else None
        if change is None:
            records.append(_record(step.name, facts, facts, changed=False))
            continue
        candidate = analyse(trimesh.Trimesh(vertices=change.vertices, faces=change.faces, process=False))
        problem = _made_worse(facts, candidate, step, volume_tolerance)
        if problem is not None:
            records.append(_record(step.name, facts, facts, changed=False, reverted=True, note=problem))
            continue
        records.append(_record(step.name, facts, candidate, changed=True, note=change.note))
        vertices, faces, facts = change.vertices, change.faces, candidate

    referenced = np.unique(faces)
    remap = np.zeros(len(vertices), dtype=np.int64)
    remap[referenced] = np.arange(len(referenced))
    repaired = trimesh.Trimesh(vertices=vertices[referenced], faces=remap[faces], process=False)
    remaining, _ = geometry_reasons(facts)
    report = RepairReport(
        before=before,
        after=facts,
        steps=records,
        verdict=RepairVerdict.FAILED if remaining else RepairVerdict.OK,
        reasons=remaining,
        merge_tolerance_mm=MERGE_RELATIVE * diagonal,
        elapsed_ms=round((time.perf_counter() - started) * 1000.0, 3),
    )
    return RepairOutcome(mesh=repaired, report=report)


def _record(
    name: str,
    before: MeshFacts,
    after: MeshFacts,
    *,
    changed: bool,
    reverted: bool = False,
    note: str | None = None,
) -> RepairStep:
    return RepairStep(
        name=name,
        faces_before=before.faces,
        faces_after=after.faces,
        bodies_before=before.bodies,
        bodies_after=after.bodies,
        volume_before=before.volume_mm3,
        volume_after=after.volume_mm3,
        watertight_after=after.watertight,
        changed=changed,
        reverted=reverted,
        note=note,
    )


def _made_worse(before: MeshFacts, after: MeshFacts, step: _Step, volume_tolerance: float) -> str | None:
    """Why the step must be reverted, or None when it may stay."""
    if after.faces == 0:
        return "it would leave no facets"
    open_before = before.boundary_edges + before.non_manifold_edges
    open_after = after.boundary_edges + after.non_manifold_edges
    if open_after > open_before:
        return f"it raised boundary + non-manifold edges from {open_before} to {open_after}"
    if before.winding_consistent and not after.winding_consistent:
        return "it broke consistent winding"
    if before.volume_reliable and not after.volume_reliable:
        return "it opened a closed body"
    if after.bodies < before.bodies and not step.changes_bodies:
        return f"it lost bodies ({before.bodies} -> {after.bodies})"
    if before.volume_reliable and after.volume_reliable:
        change = abs(after.volume_mm3 - before.volume_mm3) / max(abs(before.volume_mm3), np.finfo(float).tiny)
        if change > volume_tolerance:
            return f"it changed the volume of a closed mesh by {change:.2%}"
    return None


# --- steps -----------------------------------------------------------------------------------------------


def _boundary_half_edges(faces: IntArray, vertex_count: int) -> tuple[IntArray, IntArray]:
    """(start, end) of every half-edge whose edge has a single facet, in the facet's direction."""
    edges = half_edges(faces, vertex_count)
    single = edges.census.boundary[edges.edge]
    return edges.start[single], edges.end[single]


def _merge_near_vertices(vertices: FloatArray, faces: IntArray, diagonal: float) -> _Change | None:
    start, end = _boundary_half_edges(faces, len(vertices))
    if len(start) == 0:
        return None
    on_boundary = np.unique(np.concatenate([start, end]))
    close = cKDTree(vertices[on_boundary]).query_pairs(MERGE_RELATIVE * diagonal, output_type="ndarray")
    pairs = [on_boundary[close].reshape(-1, 2), _matching_edge_ends(vertices, start, end)]
    joined = np.concatenate(pairs)
    if len(joined) == 0:
        return None
    graph = coo_matrix(
        (np.ones(len(joined), dtype=np.int8), (joined[:, 0], joined[:, 1])), shape=(len(vertices),) * 2
    )
    _, label = connected_components(graph, directed=False)
    # Each group keeps the position of its most used vertex: the one facet pulled off a corner moves back,
    # not the corner's other facets.
    valence = np.bincount(faces.ravel(), minlength=len(vertices))
    order = np.lexsort((-valence, label))
    first = np.ones(len(order), dtype=np.bool_)
    first[1:] = label[order][1:] != label[order][:-1]
    keeper = np.empty(int(label.max()) + 1, dtype=np.int64)
    keeper[label[order[first]]] = order[first]
    merged = keeper[label][faces]
    moved = int(np.count_nonzero(keeper[label] != np.arange(len(vertices))))
    if np.array_equal(merged, faces):
        return None
    return _Change(vertices, merged, f"merged {moved} boundary vertices into their neighbours")


def _matching_edge_ends(vertices: FloatArray, start: IntArray, end: IntArray) -> IntArray:
    """Vertex pairs to merge: ends of boundary half-edges i, j with i running opposite j across a crack."""
    edge_points = np.hstack([vertices[start], vertices[end]])
    reversed_points = np.hstack([vertices[end], vertices[start]])
    _, match = cKDTree(edge_points).query(reversed_points, k=1)
    mine = np.arange(len(start))
    lengths = np.linalg.norm(vertices[end] - vertices[start], axis=1)
    gap = np.maximum(
        np.linalg.norm(vertices[start] - vertices[end[match]], axis=1),
        np.linalg.norm(vertices[end] - vertices[start[match]], axis=1),
    )
    crack = (match != mine) & (gap <= EDGE_MATCH_FRACTION * np.minimum(lengths, lengths[match]))
    return np.concatenate(
        [
            np.column_stack([start[crack], end[match[crack]]]),
            np.column_stack([end[crack], start[match[crack]]]),
        ]
    )


def _split_t_junctions(vertices: FloatArray, faces: IntArray, diagonal: float) -> _Change | None:
    """Split boundary edges at the boundary vertices lying on them (within the merge tolerance).

    A T-junction is a crack whose one side is a single long edge and whose other side is several short ones
    (trimesh__featuretype.3MF: a top face meshed with 4 corners over walls meshed with 8 vertices). Splitting
    the long edge lets the two sides match exactly; each split facet is re-triangulated as the polygon of its
    corners plus the vertices inserted on its edges, so it covers the same area with the same winding.

    Only vertices where the boundary runs straight through are candidates (a T-junction vertex sits on a
    straight run by definition), which keeps the all-pairs test against the boundary edges small.
    """
    edges = half_edges(faces, len(vertices))
    single = np.flatnonzero(edges.census.boundary[edges.edge])
    tolerance = MERGE_RELATIVE * diagonal
    candidates = _straight_through(vertices, edges.start[single], edges.end[single], tolerance)
    if len(candidates) == 0:
        return None
    start, end, owner = edges.start[single], edges.end[single], edges.face[single]
    origin = vertices[start]
    length = np.linalg.norm(vertices[end] - origin, axis=1)
    direction = (vertices[end] - origin) / length[:, None]
    found: dict[int, list[tuple[float, int]]] = {}  # boundary half-edge -> (distance along it, vertex)
    block = max(1, _PAIR_BLOCK_ELEMENTS // len(start))
    for first in range(0, len(candidates), block):
        chunk = candidates[first : first + block]
        offset = vertices[chunk][:, None, :] - origin[None, :, :]
        along = np.einsum("cej,ej->ce", offset, direction)
        off_line = np.linalg.norm(offset - along[..., None] * direction[None, :, :], axis=2)
        hit = (off_line <= tolerance) & (along > tolerance) & (along < length - tolerance)
        hit &= (chunk[:, None] != start[None, :]) & (chunk[:, None] != end[None, :])
        for row, column in zip(*np.nonzero(hit), strict=True):
            found.setdefault(int(column), []).append((float(along[row, column]), int(chunk[row])))
    if not found:
        return None
    inserted = {
        (int(start[index]), int(end[index])): [vertex for _, vertex in sorted(points)]
        for index, points in found.items()
    }
    split = np.unique(owner[list(found)])
    replacements: list[IntArray] = []
    for face in split.tolist():
        corners = faces[face].tolist()
        polygon: list[int] = []
        for corner, following in zip(corners, corners[1:] + corners[:1], strict=True):
            polygon += [corner, *inserted.get((corner, following), [])]
        ring = np.array(polygon, dtype=np.int64)
        triangles = _ear_clip(vertices[ring])
        if triangles is None:
            continue  # cannot happen for points on a triangle's edges; keep the facet rather than guess
        replacements.append(ring[triangles])
    kept = np.ones(len(faces), dtype=np.bool_)
    kept[split] = False
    added = sum(len(chain) for chain in inserted.values())
    return _Change(
        vertices,
        np.concatenate([faces[kept], *replacements]),
        f"split {len(split)} facets at {added} T-junction vertices",
    )


def _straight_through(vertices: FloatArray, start: IntArray, end: IntArray, tolerance: float) -> IntArray:
    """Boundary vertices with one boundary half-edge in and one out that continue in a straight line."""
    count = len(vertices)
    simple = (np.bincount(start, minlength=count) == 1) & (np.bincount(end, minlength=count) == 1)
    previous = np.zeros(count, dtype=np.int64)
    previous[end] = start
    following = np.zeros(count, dtype=np.int64)
    following[start] = end
    middle = np.flatnonzero(simple)
    incoming = vertices[middle] - vertices[previous[middle]]
    outgoing = vertices[following[middle]] - vertices[middle]
    # The next vertex is within tolerance of the line through the previous two, and ahead, not back.
    deviation = np.linalg.norm(np.cross(incoming, outgoing), axis=1)
    straight = (deviation <= tolerance * np.linalg.norm(incoming, axis=1)) & (
        np.einsum("ij,ij->i", incoming, outgoing) > 0.0
    )
    return np.asarray(middle[straight], dtype=np.int64)


def _drop_degenerate_faces(vertices: FloatArray, faces: IntArray, diagonal: float) -> _Change | None:
    corners = np.take(vertices, faces, axis=0)
    zero_area = ~np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]).any(axis=1)
    degenerate = repeated_vertex_faces(faces) | zero_area
    return _without(vertices, faces, degenerate, "degenerate")


def _drop_duplicate_faces(vertices: FloatArray, faces: IntArray, diagonal: float) -> _Change | None:
    """Facets on the same three vertices cancel in pairs wound opposite ways; what remains keeps one facet.

    An opposite pair is the wall between two solids that touch face to face (the corpus's OBJ exports of
    touching parts): removing both leaves their union, with the same volume. Copies wound alike are one
    facet written twice.
    """
    _, group = np.unique(np.sort(faces, axis=1), axis=0, return_inverse=True)
    group = group.ravel()
    # Orientation relative to the sorted triple: rotate each facet to start at its lowest vertex; it is an
    # even permutation of the sorted triple exactly when the other two then ascend.
    start = np.argmin(faces, axis=1)
    rows = np.arange(len(faces))
    second, third = faces[rows, (start + 1) % 3], faces[rows, (start + 2) % 3]
    sign = np.where(second < third, 1, -1)
    net = np.bincount(group, weights=sign)
    wanted = sign == np.sign(net)[group]
    order = np.lexsort((rows, ~wanted, group))
    first = np.ones(len(order), dtype=np.bool_)
    first[1:] = group[order][1:] != group[order][:-1]
    keep = np.zeros(len(faces), dtype=np.bool_)
    keep[order[first]] = wanted[order[first]]
    return _without(vertices, faces, ~keep, "duplicate")


def _drop_stray_faces(vertices: FloatArray, faces: IntArray, diagonal: float) -> _Change | None:
    edges = half_edges(faces, len(vertices))
    shared = np.zeros(len(faces), dtype=np.bool_)
    shared[edges.face[edges.census.faces[edges.edge] > 1]] = True
    # Facets with a repeated vertex have no half-edges; they are the degenerate step's business.
    stray = ~shared & ~repeated_vertex_faces(faces)
    return _without(vertices, faces, stray, "stray (unconnected)")


def _without(vertices: FloatArray, faces: IntArray, drop: BoolArray, kind: str) -> _Change | None:
    count = int(np.count_nonzero(drop))
    if count == 0:
        return None
    return _Change(vertices, faces[~drop], f"dropped {count} {kind} facets")


def _fix_winding(vertices: FloatArray, faces: IntArray, diagonal: float) -> _Change | None:
    flip = _winding_flips(vertices, faces)
    count = int(np.count_nonzero(flip))
    if count == 0:
        return None
    fixed = faces.copy()
    fixed[flip] = fixed[flip][:, ::-1]
    return _Change(vertices, fixed, f"flipped {count} facets")


def _winding_flips(vertices: FloatArray, faces: IntArray) -> BoolArray:
    """Which facets to flip so that every patch is consistently wound and points outwards.

    Each facet f is two nodes of a graph, "f as is" (f) and "f flipped" (f + n). Two facets on a two-facet
    edge are consistent as they are when they use the edge in opposite directions (link f-g and f+n-g+n),
    else when one is flipped (link f-g+n and f+n-g). In each patch the nodes then fall into two components,
    one orientation each; when both nodes of a facet share a component the patch is non-orientable and is
    left as it is.
    """
    count = len(faces)
    edges = half_edges(faces, len(vertices))
    paired = np.flatnonzero(edges.census.faces[edges.edge] == 2)
    paired = paired[np.argsort(edges.edge[paired], kind="stable")]
    first, second = paired[0::2], paired[1::2]
    face_a, face_b = edges.face[first], edges.face[second]
    same_direction = edges.start[first] == edges.start[second]
    rows = np.concatenate([face_a, face_a + count])
    cols = np.concatenate(
        [np.where(same_direction, face_b + count, face_b), np.where(same_direction, face_b, face_b + count)]
    )
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(2 * count, 2 * count))
    _, label = connected_components(graph, directed=False)
    as_is, flipped = label[:count], label[count:]
    orientable = as_is != flipped
    patch_key = np.minimum(as_is, flipped)
    _, patch = np.unique(patch_key, return_inverse=True)
    patches = int(patch.max()) + 1
    # Make each patch consistent by flipping the facets whose "as is" node is the larger component.
    in_second = orientable & (as_is > flipped)

    corners = np.take(vertices - vertices.mean(axis=0), faces, axis=0)  # centred: volume terms stay small
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    area = np.linalg.norm(cross, axis=1)
    sign = np.where(in_second, -1.0, 1.0)
    volume = np.bincount(patch, weights=sign * np.einsum("ij,ij->i", corners[:, 0], cross), minlength=patches)
    area_second = np.bincount(patch, weights=area * in_second, minlength=patches)
    area_total = np.bincount(patch, weights=area, minlength=patches)
    touches_open = np.zeros(count, dtype=np.bool_)
    touches_open[edges.face[edges.census.faces[edges.edge] != 2]] = True
    closed = (np.bincount(patch, weights=touches_open, minlength=patches) == 0) & (
        np.bincount(patch, weights=~orientable, minlength=patches) == 0
    )

    negative = np.flatnonzero(closed & (volume < 0.0))
    cavity = np.zeros(patches, dtype=np.bool_)
    cavity[negative] = inside_other_bodies(corners, patch, closed, negative)  # orientation plays no part
    # Closed: outwards unless a cavity. Open: keep the orientation of most of the area.
    turn_patch = np.where(closed, (volume < 0.0) & ~cavity, area_second * 2.0 > area_total)
    return np.asarray(orientable & (in_second != turn_patch[patch]), dtype=np.bool_)


def _fill_holes(vertices: FloatArray, faces: IntArray, diagonal: float) -> _Change | None:
    start, end = _boundary_half_edges(faces, len(vertices))
    if len(start) == 0:
        return None
    new_vertices: list[FloatArray] = [vertices]
    new_faces: list[IntArray] = []
    vertex_count = len(vertices)
    methods = {"ear": 0, "fan": 0}
    for loop in _boundary_loops(start, end):
        # The loop runs along its facets' half-edges; fill facets must run the other way.
        ring = np.array(loop[::-1], dtype=np.int64)
        triangles = _ear_clip(vertices[ring]) if len(ring) <= EAR_CLIP_MAX_VERTICES else None
        if triangles is not None:
            new_faces.append(ring[triangles])
            methods["ear"] += 1
            continue
        centre = vertex_count
        vertex_count += 1
        new_vertices.append(vertices[ring].mean(axis=0, keepdims=True))
        new_faces.append(np.column_stack([ring, np.roll(ring, -1), np.full(len(ring), centre)]))
        methods["fan"] += 1
    if not new_faces:
        return None
    all_vertices = np.concatenate(new_vertices)
    added = np.concatenate(new_faces)
    added = added[~_caps_sheets(all_vertices, faces, added, diagonal)]
    if len(added) == 0:
        return None
    return _Change(
        all_vertices,
        np.concatenate([faces, added]),
        f"filled {methods['ear']} holes by ear clipping and {methods['fan']} with a centroid fan "
        f"({len(added)} facets)",
    )


def _caps_sheets(vertices: FloatArray, faces: IntArray, added: IntArray, diagonal: float) -> BoolArray:
    """Per added facet: whether it closes a body of (near) zero volume, i.e. caps a sheet with its mirror."""
    combined = np.concatenate([faces, added])
    bodies, face_body, _ = vertex_bodies(combined, edge_census(combined, len(vertices)), len(vertices))
    corners = np.take(vertices - vertices.mean(axis=0), combined, axis=0)
    volume = np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])) / 6.0
    body_volume = np.bincount(face_body, weights=volume, minlength=bodies)
    sheet = np.abs(body_volume[face_body[len(faces) :]]) <= SHEET_VOLUME_RELATIVE * diagonal**3
    return np.asarray(sheet, dtype=np.bool_)


def _boundary_loops(start: IntArray, end: IntArray) -> list[list[int]]:
    """Simple closed loops of boundary half-edges; a loop through a vertex twice is split there.

    Walks half-edges until it returns to a vertex already on the path, emits that cycle and goes on from
    there (Hierholzer-style). A walk that gets stuck (an open chain: inconsistent or non-manifold borders)
    is dropped; those edges stay open.
    """
    outgoing: dict[int, list[int]] = {}
    for a, b in zip(start.tolist(), end.tolist(), strict=True):
        outgoing.setdefault(a, []).append(b)
    loops: list[list[int]] = []
    for origin in list(outgoing):
        while outgoing[origin]:
            path = [origin]
            position = {origin: 0}
            while nexts := outgoing.get(path[-1]):
                vertex = nexts.pop()
                if vertex not in position:
                    position[vertex] = len(path)
                    path.append(vertex)
                    continue
                cut = position[vertex]
                loops.append(path[cut:])
                for dropped in path[cut + 1 :]:
                    del position[dropped]
                del path[cut + 1 :]
    return [loop for loop in loops if len(loop) >= 3]


def _ear_clip(points: FloatArray) -> IntArray | None:
    """Triangulate a closed 3D loop by ear clipping on its best-fit plane.

    Returns (n-2, 3) indices into ``points``, each triangle in the loop's own order, or None when the
    projected loop is not a simple polygon or no ear can be found (the caller then uses a fan).
    """
    count = len(points)
    if count == 3:
        return np.array([[0, 1, 2]], dtype=np.int64)
    centred = points - points.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    flat = centred @ axes[:2].T
    if _signed_area(flat) < 0.0:
        flat[:, 1] = -flat[:, 1]  # mirror so the loop runs counter-clockwise; indices are unaffected
    if not _is_simple(flat):
        return None
    remaining = list(range(count))
    triangles: list[tuple[int, int, int]] = []
    while len(remaining) > 3:
        ear = _find_ear(flat, remaining)
        if ear is None:
            return None
        size = len(remaining)
        triangles.append((remaining[ear - 1], remaining[ear], remaining[(ear + 1) % size]))
        del remaining[ear]
    triangles.append((remaining[0], remaining[1], remaining[2]))
    return np.array(triangles, dtype=np.int64)


def _signed_area(flat: FloatArray) -> float:
    x, y = flat[:, 0], flat[:, 1]
    return float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) / 2.0


def _find_ear(flat: FloatArray, remaining: list[int]) -> int | None:
    """Position in ``remaining`` of a convex corner whose triangle holds no other corner; strictly convex
    corners first, then straight ones (a loop with collinear vertices needs them at the end)."""
    polygon = flat[remaining]
    before, after = np.roll(polygon, 1, axis=0), np.roll(polygon, -1, axis=0)
    turn = _cross2(polygon - before, after - polygon)
    for candidates in (np.flatnonzero(turn > 0.0), np.flatnonzero(turn == 0.0)):
        for ear in candidates.tolist():
            others = np.ones(len(polygon), dtype=np.bool_)
            others[[ear - 1, ear, (ear + 1) % len(polygon)]] = False
            if not _in_triangle(polygon[others], before[ear], polygon[ear], after[ear]).any():
                return int(ear)
    return None


def _cross2(a: FloatArray, b: FloatArray) -> FloatArray:
    return np.asarray(a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0], dtype=np.float64)


def _in_triangle(points: FloatArray, a: FloatArray, b: FloatArray, c: FloatArray) -> BoolArray:
    """Points inside or on the counter-clockwise triangle abc."""
    return np.asarray(
        (_cross2(b - a, points - a) >= 0.0)
        & (_cross2(c - b, points - b) >= 0.0)
        & (_cross2(a - c, points - c) >= 0.0),
        dtype=np.bool_,
    )


def _is_simple(flat: FloatArray) -> bool:
    """No two non-adjacent edges of the closed polygon intersect (all pairs, vectorised: O(n^2))."""
    count = len(flat)
    if count <= 3:
        return True
    p, q = flat, np.roll(flat, -1, axis=0)
    i, j = np.triu_indices(count, k=2)
    keep = ~((i == 0) & (j == count - 1))  # the last edge is adjacent to the first
    i, j = i[keep], j[keep]
    d1 = _cross2(q[i] - p[i], p[j] - p[i])
    d2 = _cross2(q[i] - p[i], q[j] - p[i])
    d3 = _cross2(q[j] - p[j], p[i] - p[j])
    d4 = _cross2(q[j] - p[j], q[i] - p[j])
    crossing = (d1 * d2 < 0.0) & (d3 * d4 < 0.0)
    # An end point on the other segment (collinear and within its extent) also counts: a touching loop.
    touching = (
        ((d1 == 0.0) & _within(p[i], q[i], p[j]))
        | ((d2 == 0.0) & _within(p[i], q[i], q[j]))
        | ((d3 == 0.0) & _within(p[j], q[j], p[i]))
        | ((d4 == 0.0) & _within(p[j], q[j], q[i]))
    )
    return not bool(np.any(crossing | touching))


def _within(a: FloatArray, b: FloatArray, point: FloatArray) -> BoolArray:
    """Per row: ``point`` inside the axis-aligned box of segment ab (for points known to be collinear)."""
    return np.asarray(
        np.all((np.minimum(a, b) <= point) & (point <= np.maximum(a, b)), axis=1), dtype=np.bool_
    )


def _is_open(facts: MeshFacts) -> bool:
    return facts.boundary_edges > 0


def _is_misoriented(facts: MeshFacts) -> bool:
    return not facts.winding_consistent or facts.inverted_bodies > 0


_STEPS: Final = (
    _Step("merge_near_vertices", _merge_near_vertices, _is_open, changes_bodies=True),
    _Step("split_t_junctions", _split_t_junctions, _is_open),
    _Step("drop_degenerate_faces", _drop_degenerate_faces, lambda facts: facts.degenerate_faces > 0),
    _Step("drop_duplicate_faces", _drop_duplicate_faces, lambda facts: facts.duplicate_faces > 0),
    _Step("drop_stray_faces", _drop_stray_faces, _is_open, changes_bodies=True),
    _Step("fix_winding", _fix_winding, _is_misoriented),
    _Step("fill_holes", _fill_holes, _is_open),
    _Step("fix_winding_after_fill", _fix_winding, _is_misoriented),
)
