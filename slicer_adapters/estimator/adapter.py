"""The built-in estimator: print time and filament from geometry facts alone, and a preview G-code.

``BuiltinEstimator`` is a ``Slicer`` that needs no binary: it loads the STL, measures it,
estimates, and writes a simple but real G-code (each layer's outline, no infill) marked as a preview.

The model itself is in ``slicer_adapters.estimator.model``.

Face classes (the same thresholds as ``parts_catalog.geometry``, so a geometry report and the estimator
agree): a face with unit normal ``n`` is *up* when ``n_z >= 0.7071``, *down* when ``n_z <= -0.7071`` and
*side* otherwise; 0.7071 is cos 45 degrees, the usual overhang limit, beyond which a slicer covers a surface
with solid skin instead of stacking perimeters.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import trimesh
from numpy.typing import NDArray

from slicer_adapters.errors import EmptySliceOutput, SlicerFailed, SlicerResourceExhausted, SlicerTimeout
from slicer_adapters.estimator.model import DEFAULT_CALIBRATION, Calibration, Estimate, estimate
from slicer_adapters.models import MeshStats, SliceJob, SliceResult

# The model's version: part of the slice cache key with the calibration id. Bump when ``estimate`` or the
# preview G-code changes.
ESTIMATOR_VERSION = "1"
UP_NORMAL_Z = 0.7071  # cos 45 degrees: see the module docstring
DOWN_NORMAL_Z = -0.7071
# Preview G-code bound. Measured on a 327k-face sphere: sectioning takes ~0.35 us per (face, layer) crossing,
# writing ~1.8 us and ~60 bytes per outline segment (2 lines), so 300k segments cost ~0.6 s and ~18 MB.
# Above that only every Nth layer's outline is drawn (all layers are still marked).
MAX_PREVIEW_SEGMENTS = 300_000
# Peak memory of a whole estimator slice, measured on 82k to 1.3M-face spheres: 290-490 bytes per face above
# the process's baseline (trimesh's full, processed load alone peaks at ~570: shared/GEOMETRY-AND-SLICING.md).
_BYTES_PER_FACE = 600
_STL_HEADER_BYTES, _STL_FACE_BYTES = 84, 50  # binary STL: 80-byte header + uint32 count; 50 bytes per face


def mesh_stats(mesh: trimesh.Trimesh) -> MeshStats:
    """The facts ``estimate`` needs, measured on a mesh in millimetres (face classes: module docstring).

    A mesh whose signed volume is negative is taken as inside out: its volume is negated and its up and down
    areas swapped, as a slicer repairing flipped facets would see it.
    """
    normals_z = np.asarray(mesh.face_normals, dtype=np.float64)[:, 2]
    areas = np.asarray(mesh.area_faces, dtype=np.float64)
    up = float(areas[normals_z >= UP_NORMAL_Z].sum())
    down = float(areas[normals_z <= DOWN_NORMAL_Z].sum())
    side = float(areas.sum()) - up - down
    # Signed volume by the divergence theorem (tetrahedra from the bounding box centre to every face), without
    # trimesh's mass properties, which divide by the volume and warn on a flat mesh. A closed mesh gives the
    # same from any centre; for an open one the box centre at least does not depend on where the part sits.
    corners = np.asarray(mesh.triangles, dtype=np.float64) - np.asarray(mesh.bounds, dtype=np.float64).mean(
        axis=0
    )
    volume = float(np.einsum("ij,ij->", corners[:, 0], np.cross(corners[:, 1], corners[:, 2]))) / 6.0
    if volume < 0:
        volume, up, down = -volume, down, up
    extents = np.asarray(mesh.extents, dtype=np.float64)
    return MeshStats(
        volume_mm3=volume,
        area_up_mm2=up,
        area_down_mm2=down,
        area_side_mm2=side,
        size_mm=(float(extents[0]), float(extents[1]), float(extents[2])),
    )


class BuiltinEstimator:
    """A ``Slicer`` without a binary: estimates from the mesh and writes an outline-only preview G-code.

    Always available. Its G-code is marked as a preview in its header and must not be sent to a production
    printer: it has no infill, no skins and no temperature commands. The footer carries the estimates in
    PrusaSlicer's comment format, so ``slicer_adapters.gcode`` reads them; the E values of the outlines do
    not add up to that estimate.
    """

    def __init__(self, calibration: Calibration = DEFAULT_CALIBRATION) -> None:
        self._calibration = calibration

    @property
    def name(self) -> str:
        return "estimator"

    async def version(self) -> str:
        """``<model version>+<calibration id>``, e.g. ``1+ps25-fit1``: a new calibration is a new slice."""
        return f"{ESTIMATOR_VERSION}+{self._calibration.id}"

    async def slice(self, job: SliceJob) -> SliceResult:
        """Estimate ``job.model_path`` (binary STL, mm) and write ``preview.gcode`` in ``job.workdir``.

        The CPU work runs in a worker thread; it checks the deadline between layers and stops soon after it.

        Raises:
            SlicerTimeout: ``job.timeout_s`` passed.
            SlicerResourceExhausted: the STL has more faces than ``job.memory_limit_bytes`` allows.
            SlicerFailed: the file is not a readable STL.
            EmptySliceOutput: the mesh has no faces, no volume or no height.
        """
        deadline = time.monotonic() + job.timeout_s
        version = await self.version()
        cancel = threading.Event()
        work = asyncio.to_thread(self._slice, job, version, deadline, cancel)
        try:
            return await asyncio.wait_for(work, timeout=job.timeout_s)
        except TimeoutError:
            cancel.set()
            raise _timeout(job) from None

    def _slice(self, job: SliceJob, version: str, deadline: float, cancel: threading.Event) -> SliceResult:
        def check_time() -> None:
            if cancel.is_set() or time.monotonic() > deadline:
                raise _timeout(job)

        mesh = _load_stl(job.model_path, job.memory_limit_bytes)
        check_time()
        stats = mesh_stats(mesh)
        if stats.size_mm[2] <= 0 or stats.volume_mm3 <= 0:
            raise EmptySliceOutput("the mesh encloses no volume: nothing to print")
        result = estimate(stats, job.profile, self._calibration)
        if result.print_seconds <= 0 or result.filament_mm3 <= 0:
            raise EmptySliceOutput("the estimate is empty: nothing to print")
        output = job.workdir / "preview.gcode"
        partial = output.with_suffix(".gcode.part")
        try:
            _write_preview(mesh, job, result, version, partial, check_time)
            partial.replace(output)
        finally:
            partial.unlink(missing_ok=True)
        return SliceResult(
            gcode_path=output,
            print_seconds=result.print_seconds,
            filament_mm3=result.filament_mm3,
            filament_g=result.filament_g,
            layer_count=result.layer_count,
            slicer=self.name,
            slicer_version=version,
            warnings=(
                "estimator preview: outlines only, estimates from geometry; not for production printers",
            ),
        )


def _timeout(job: SliceJob) -> SlicerTimeout:
    return SlicerTimeout(f"estimator stopped: the job's {job.timeout_s:g} s timeout has passed")


def _load_stl(path: Path, memory_limit_bytes: int) -> trimesh.Trimesh:
    """The STL as one mesh, unprocessed (a raw triangle soup loads ~20x faster and is all the model needs).

    Raises:
        SlicerResourceExhausted, SlicerFailed, EmptySliceOutput: see ``BuiltinEstimator.slice``.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SlicerFailed(f"cannot read the model: {exc}") from exc
    # A binary STL's face count follows from its size; an ASCII one is larger per face, so this over-counts.
    faces = max(0, size - _STL_HEADER_BYTES) // _STL_FACE_BYTES
    if faces * _BYTES_PER_FACE > memory_limit_bytes:
        raise SlicerResourceExhausted(
            f"about {faces} faces need more than the job's {memory_limit_bytes} byte memory limit"
        )
    try:
        loaded = trimesh.load(str(path), file_type="stl", force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types on malformed input; all mean "not an STL"
        raise SlicerFailed(f"the model is not a readable STL: {exc}") from exc
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise EmptySliceOutput("the model has no faces")
    return loaded


def _plane_ranges(
    triangles: NDArray[np.float64], heights: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """For each triangle, the first of the sorted ``heights`` within its z range and how many are."""
    z = triangles[:, :, 2]
    first = np.searchsorted(heights, z.min(axis=1), side="left")
    last = np.searchsorted(heights, z.max(axis=1), side="right")
    return first, np.maximum(last - first, 0)


def _sections(
    triangles: NDArray[np.float64], heights: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Every triangle crossed by every plane z = heights[i], vectorised over all (triangle, plane) pairs.

    Args:
        triangles: (f, 3, 3) corners.
        heights: (m,) increasing plane heights.
    Returns:
        ``(plane, segment)``: for each crossing the plane's index, sorted, and its (2, 2) XY segment.
    """
    first, count = _plane_ranges(triangles, heights)
    face = np.repeat(np.arange(len(triangles)), count)
    # Plane index of each pair: the face's first plane plus the pair's rank within the face.
    offsets = np.arange(len(face)) - np.repeat(np.cumsum(count) - count, count)
    plane = np.repeat(first, count) + offsets
    order = np.argsort(plane, kind="stable")
    face, plane = face[order], plane[order]

    corners = triangles[face]  # (n, 3, 3)
    distance = corners[:, :, 2] - heights[plane][:, None]
    above = distance >= 0  # a corner exactly on the plane counts as above: each crossing cuts 2 edges
    # A plane through a triangle's lowest corner, or through a flat triangle, has nothing below it to cut.
    crossed = (above.sum(axis=1) == 1) | (above.sum(axis=1) == 2)
    plane, corners, distance, above = plane[crossed], corners[crossed], distance[crossed], above[crossed]
    # The corner alone on its side of the plane; the segment joins the points on its two edges.
    lone = np.where(above.sum(axis=1) == 1, np.argmax(above, axis=1), np.argmin(above, axis=1))
    rows = np.arange(len(plane))
    start = corners[rows, lone]
    d_start = distance[rows, lone]
    ends = []
    for step in (1, 2):
        other = (lone + step) % 3
        d_other = distance[rows, other]
        t = d_start / (d_start - d_other)
        ends.append(start[:, :2] + (corners[rows, other, :2] - start[:, :2]) * t[:, None])
    return plane, np.stack(ends, axis=1)


def _write_preview(
    mesh: trimesh.Trimesh,
    job: SliceJob,
    result: Estimate,
    version: str,
    path: Path,
    check_time: Callable[[], None],
) -> None:
    """Write each layer's outline (segments joined by travel moves) and the estimates as a footer."""
    p = job.profile
    triangles = np.array(mesh.triangles, dtype=np.float64)
    low, high = triangles.reshape(-1, 3).min(axis=0), triangles.reshape(-1, 3).max(axis=0)
    # Centred on the bed, resting on z=0, as a slicer adapter places the part.
    triangles -= [(low[0] + high[0]) / 2, (low[1] + high[1]) / 2, low[2]]
    triangles[:, :, :2] += [job.build_volume.x_mm / 2, job.build_volume.y_mm / 2]

    tops = p.first_layer_height_mm + p.layer_height_mm * np.arange(result.layer_count, dtype=np.float64)
    thickness = np.full(result.layer_count, p.layer_height_mm)
    thickness[0] = p.first_layer_height_mm
    middles = tops - thickness / 2  # slicers cut each layer at its mid-height
    crossings = int(_plane_ranges(triangles, middles)[1].sum())
    stride = max(1, math.ceil(crossings / MAX_PREVIEW_SEGMENTS))
    drawn = np.arange(0, result.layer_count, stride)
    check_time()
    plane, segments = _sections(triangles, middles[drawn])
    bounds = np.searchsorted(plane, np.arange(len(drawn) + 1))
    filament_section = math.pi * (p.filament_diameter_mm / 2) ** 2
    travel_f = p.travel_speed_mm_s * 60  # G-code feed rates are per minute

    with path.open("w", encoding="ascii") as out:
        out.write(
            "; SPAREFLOW ESTIMATOR PREVIEW: NOT FOR PRODUCTION PRINTERS\n"
            f"; generated by the Spareflow built-in estimator {version}\n"
            "; each layer's outline only (no infill, no skins, no temperatures); estimates in the footer\n"
            + (f"; outline drawn on every {stride}th layer only (preview size limit)\n" if stride > 1 else "")
            + f"; profile {p.name}: layer {p.layer_height_mm:g} mm, line {p.line_width_mm:g} mm\n"
            "G21 ; millimetres\nG90 ; absolute coordinates\nM83 ; relative extrusion\n"
        )
        for layer in range(result.layer_count):
            check_time()
            out.write(
                f";LAYER_CHANGE\n;Z:{tops[layer]:.3f}\n;HEIGHT:{thickness[layer]:.3f}\n"
                f"G0 Z{tops[layer]:.3f} F{travel_f:.0f}\n"
            )
            if layer % stride:
                continue
            drawn_index = layer // stride
            segment = segments[bounds[drawn_index] : bounds[drawn_index + 1]].reshape(-1, 4)
            if not len(segment):
                continue
            length = np.hypot(segment[:, 2] - segment[:, 0], segment[:, 3] - segment[:, 1])
            extrude = length * p.line_width_mm * thickness[layer] / filament_section
            speed = p.first_layer_speed_mm_s if layer == 0 else p.external_perimeter_speed_mm_s
            np.savetxt(
                out,
                np.column_stack([segment, extrude]),
                fmt=f"G0 X%.3f Y%.3f F{travel_f:.0f}\nG1 X%.3f Y%.3f E%.5f F{speed * 60:.0f}",
            )
        out.write(
            f"G0 Z{tops[-1] + 10:.3f} F{travel_f:.0f} ; lift away from the part\n"
            + f"; filament used [mm] = {result.filament_mm3 / filament_section:.2f}\n"
            f"; filament used [cm3] = {result.filament_mm3 / 1000:.2f}\n"
            f"; filament used [g] = {result.filament_g:.2f}\n"
            f"; estimated printing time (normal mode) = {format_duration(result.print_seconds)}\n"
        )


def format_duration(seconds: float) -> str:
    """A duration as PrusaSlicer writes it: ``1d 2h 3m 4s``, ``18m 53s``, ``28s`` (whole seconds)."""
    left = max(1, round(seconds))  # a real print never takes 0 s, and the parser must read a positive time
    parts: list[str] = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if left >= size or parts:
            parts.append(f"{left // size}{unit}")
            left %= size
    return " ".join([*parts, f"{left}s"])
