"""The built-in estimator against PrusaSlicer 2.5: per-part and median errors, and a fit of its Calibration.

Run from the project root::

    .venv/bin/python tests/benchmarks/bench_estimator.py

Parts: every corpus file (``../shared/corpus``) that is an STL, OBJ or 3MF which PrusaSlicer sliced in the
manifest (``prusaslicer_2.5`` starts with "ok"), whose largest extent is 10-200 units and which fits a
250 x 210 x 210 mm bed; plus the demo parts of ``services.demo.meshes``. Each is converted to a binary STL in
millimetres resting on z=0 and sliced by both adapters with the default ``PrintProfile``.

PrusaSlicer results are cached under ``.cache/bench_estimator`` (by STL digest, the adapter's config and the
slicer version), so re-running after a calibration change only re-runs the estimator. The fit minimises the
relative (log) error with a robust loss over the ``Calibration`` multipliers and prints leave-one-out errors
too: a fit that only looks good in-sample is overfitted. Goal: median absolute error <= 15 % for both time and
filament.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import hashlib
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from scipy.optimize import least_squares  # type: ignore[import-untyped]

from services.demo.meshes import DEMO_PARTS
from slicer_adapters.errors import SlicerError
from slicer_adapters.estimator.adapter import BuiltinEstimator, mesh_stats
from slicer_adapters.estimator.model import DEFAULT_CALIBRATION, Calibration, estimate
from slicer_adapters.models import BuildVolume, MeshStats, PrintProfile, SliceJob
from slicer_adapters.prusaslicer import PrusaSlicerCli
from slicer_adapters.prusaslicer.config import prusaslicer_config, render_ini

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
CACHE = ROOT / ".cache" / "bench_estimator"
BED = BuildVolume(x_mm=250, y_mm=210, z_mm=210)
PROFILE = PrintProfile()
GOAL_PERCENT = 15.0
EXTENT_RANGE = (10.0, 200.0)  # manifest units: outside it the file is likely in metres or inches
SUFFIXES = {".stl", ".obj", ".3mf"}
# Calibration fields the fit may change: filament depends only on the first group, time on both.
FILAMENT_FIELDS = ("skin_factor", "thin_width_mm")
TIME_FIELDS = ("motion_factor", "layer_overhead_s")


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    stl: Path
    stats: MeshStats


@dataclass(frozen=True, slots=True)
class Measured:
    part: Part
    seconds: float  # PrusaSlicer's estimates, the reference
    filament_mm3: float
    slice_s: float  # how long each adapter took
    estimate_s: float
    estimator_seconds: float
    estimator_filament_mm3: float


def _load_mm(path: Path) -> trimesh.Trimesh:
    """The file as one mesh in millimetres (3MF carries its unit; STL and OBJ are taken as mm).

    Geometry is gathered by hand from the scene graph: trimesh's own concatenation copies visuals, and an
    OBJ's texture material cannot be copied without pillow.
    """
    scene = trimesh.load(str(path), force="scene", skip_materials=True)
    assert isinstance(scene, trimesh.Scene)
    scale = trimesh.units.unit_conversion(scene.units, "millimeters") if scene.units else 1.0
    bodies = []
    for node in scene.graph.nodes_geometry:
        transform, name = scene.graph[node]
        geometry = scene.geometry[name]
        if isinstance(geometry, trimesh.Trimesh):
            vertices = trimesh.transform_points(geometry.vertices, transform) * scale
            bodies.append(trimesh.Trimesh(vertices=vertices, faces=geometry.faces))
    mesh = trimesh.util.concatenate(bodies) if bodies else trimesh.Trimesh()
    assert isinstance(mesh, trimesh.Trimesh)
    return mesh


def _write_stl(directory: Path, name: str, mesh: trimesh.Trimesh) -> Path | None:
    """A binary STL resting on z=0, or None when the part does not fit the bed (either way round in XY)."""
    x, y, z = (float(v) for v in mesh.extents)
    fits = z <= BED.z_mm and ((x <= BED.x_mm and y <= BED.y_mm) or (y <= BED.x_mm and x <= BED.y_mm))
    if len(mesh.faces) == 0 or not fits:
        return None
    mesh = mesh.copy()
    mesh.apply_translation(-mesh.bounds[0])
    path = directory / f"{name}.stl"
    path.write_bytes(trimesh.exchange.stl.export_stl(mesh))
    return path


def collect_parts(directory: Path) -> list[Part]:
    parts: list[Part] = []
    meshes: list[tuple[str, trimesh.Trimesh]] = []
    manifest = CORPUS / "manifest.csv"
    if manifest.is_file():
        with manifest.open(newline="") as file:
            for row in csv.DictReader(file):
                path = CORPUS / row["file"]
                try:
                    extent = max(float(row[key]) for key in ("bbox_x", "bbox_y", "bbox_z"))
                except ValueError:
                    continue
                if (
                    path.suffix.lower() in SUFFIXES
                    and row["prusaslicer_2.5"].startswith("ok")
                    and EXTENT_RANGE[0] <= extent <= EXTENT_RANGE[1]
                ):
                    meshes.append((path.stem, _load_mm(path)))
    else:
        print(f"corpus not found at {CORPUS}: benchmarking the demo parts only")
    meshes += [(part.part_number, part.build()) for part in DEMO_PARTS]
    for name, mesh in meshes:
        stl = _write_stl(directory, name, mesh)
        if stl is None:
            print(f"skipped {name}: does not fit the {BED.x_mm:g} x {BED.y_mm:g} x {BED.z_mm:g} mm bed")
            continue
        loaded = trimesh.load(str(stl), file_type="stl", force="mesh", process=False)
        assert isinstance(loaded, trimesh.Trimesh)
        parts.append(Part(name=name, stl=stl, stats=mesh_stats(loaded)))
    return parts


async def _slice_prusaslicer(slicer: PrusaSlicerCli, part: Part, workdir: Path) -> tuple[float, float, float]:
    """(seconds, filament mm3, wall time) from PrusaSlicer, cached across runs."""
    version = await slicer.version()
    digest = hashlib.sha256(part.stl.read_bytes()).hexdigest()
    # The adapter's whole config (profile, bed and its own fixed keys) and the version decide the result.
    config = render_ini(prusaslicer_config(PROFILE, BED))
    key = hashlib.sha256(f"{digest}|{config}|{version}".encode()).hexdigest()
    cached = CACHE / f"{key}.json"
    if cached.is_file():
        data = json.loads(cached.read_text())
        return data["seconds"], data["filament_mm3"], data["slice_s"]
    started = time.perf_counter()
    result = await slicer.slice(
        SliceJob(model_path=part.stl, profile=PROFILE, build_volume=BED, workdir=workdir, timeout_s=300)
    )
    elapsed = time.perf_counter() - started
    CACHE.mkdir(parents=True, exist_ok=True)
    data = {"seconds": result.print_seconds, "filament_mm3": result.filament_mm3, "slice_s": elapsed}
    cached.write_text(json.dumps(data))
    return result.print_seconds, result.filament_mm3, elapsed


async def measure(parts: Sequence[Part], directory: Path) -> list[Measured]:
    prusaslicer = PrusaSlicerCli(cache_dir=CACHE / "configs")
    if await prusaslicer.version() is None:
        sys.exit("prusa-slicer is not installed here: nothing to calibrate against")
    estimator = BuiltinEstimator()
    rows: list[Measured] = []
    for index, part in enumerate(parts):
        try:
            seconds, filament, slice_s = await _slice_prusaslicer(
                prusaslicer, part, _workdir(directory, f"ps{index}")
            )
        except SlicerError as exc:
            print(f"skipped {part.name}: PrusaSlicer failed ({exc.code}: {exc.message})")
            continue
        started = time.perf_counter()
        job = SliceJob(
            model_path=part.stl, profile=PROFILE, build_volume=BED, workdir=_workdir(directory, f"e{index}")
        )
        ours = await estimator.slice(job)
        rows.append(
            Measured(
                part=part,
                seconds=seconds,
                filament_mm3=filament,
                slice_s=slice_s,
                estimate_s=time.perf_counter() - started,
                estimator_seconds=ours.print_seconds,
                estimator_filament_mm3=ours.filament_mm3,
            )
        )
    return rows


def _workdir(directory: Path, name: str) -> Path:
    path = directory / name
    path.mkdir()
    return path


def _percent(predicted: float, actual: float) -> float:
    return 100.0 * (predicted - actual) / actual


def _errors(rows: Sequence[Measured], calibration: Calibration) -> tuple[list[float], list[float]]:
    """Signed % errors of time and filament for every row under ``calibration``."""
    times, filaments = [], []
    for row in rows:
        result = estimate(row.part.stats, PROFILE, calibration)
        times.append(_percent(result.print_seconds, row.seconds))
        filaments.append(_percent(result.filament_mm3, row.filament_mm3))
    return times, filaments


def _median_abs(values: Sequence[float]) -> float:
    return statistics.median(abs(v) for v in values)


def fit(rows: Sequence[Measured], start: Calibration) -> Calibration:
    """Least squares on the log ratio (relative error), with a soft-L1 loss so a few odd parts (open meshes,
    thin shells) do not pull the multipliers; filament first (it needs only its own fields), then time."""

    def solve(
        calibration: Calibration, fields: tuple[str, ...], pick: Callable[[Measured], float], key: str
    ) -> Calibration:
        def residuals(values: np.ndarray) -> np.ndarray:
            trial = dataclasses.replace(calibration, **dict(zip(fields, values.tolist(), strict=True)))
            predicted = [getattr(estimate(row.part.stats, PROFILE, trial), key) for row in rows]
            ratio = np.maximum(predicted, 1e-9) / np.array([pick(row) for row in rows])
            logs: np.ndarray = np.log(ratio)
            return logs

        x0 = np.array([getattr(calibration, name) for name in fields])
        solution = least_squares(residuals, x0, bounds=(0.0, np.inf), loss="soft_l1", f_scale=0.1)
        return dataclasses.replace(calibration, **dict(zip(fields, solution.x.tolist(), strict=True)))

    fitted = solve(start, FILAMENT_FIELDS, lambda row: row.filament_mm3, "filament_mm3")
    return solve(fitted, TIME_FIELDS, lambda row: row.seconds, "print_seconds")


def leave_one_out(rows: Sequence[Measured], start: Calibration) -> tuple[float, float]:
    """Median absolute % errors when each part is predicted by a fit made without it."""
    times, filaments = [], []
    for index in range(len(rows)):
        calibration = fit([*rows[:index], *rows[index + 1 :]], start)
        time_errors, filament_errors = _errors(rows[index : index + 1], calibration)
        times += time_errors
        filaments += filament_errors
    return _median_abs(times), _median_abs(filaments)


def report(rows: Sequence[Measured]) -> None:
    time_errors, filament_errors = _errors(rows, DEFAULT_CALIBRATION)
    print(f"\n{'part':44} {'PS time':>9} {'est':>9} {'err%':>7} {'PS mm3':>9} {'est':>9} {'err%':>7}")
    for row, time_error, filament_error in zip(rows, time_errors, filament_errors, strict=True):
        print(
            f"{row.part.name[:44]:44} {row.seconds:9.0f} {row.estimator_seconds:9.0f} {time_error:7.1f}"
            f" {row.filament_mm3:9.0f} {row.estimator_filament_mm3:9.0f} {filament_error:7.1f}"
        )
    time_median, filament_median = _median_abs(time_errors), _median_abs(filament_errors)
    verdict = "meets" if max(time_median, filament_median) <= GOAL_PERCENT else "misses"
    print(
        f"\n{len(rows)} parts, calibration {DEFAULT_CALIBRATION.id}: median |error| "
        f"time {time_median:.1f} %, filament {filament_median:.1f} % ({verdict} the {GOAL_PERCENT:g} % goal)"
    )
    slice_s, estimate_s = [r.slice_s for r in rows], [r.estimate_s for r in rows]
    print(
        f"wall time per part, median: PrusaSlicer {statistics.median(slice_s):.2f} s, "
        f"estimator {statistics.median(estimate_s):.3f} s (max {max(estimate_s):.2f} s)"
    )

    fitted = fit(rows, DEFAULT_CALIBRATION)
    fitted_time, fitted_filament = (_median_abs(e) for e in _errors(rows, fitted))
    loo_time, loo_filament = leave_one_out(rows, DEFAULT_CALIBRATION)
    print("\nsuggested Calibration (fitted on these parts):")
    for name in (*FILAMENT_FIELDS, *TIME_FIELDS):
        print(
            f"    {name}: float = {getattr(fitted, name):.3g}  (now {getattr(DEFAULT_CALIBRATION, name):.3g})"
        )
    print(
        f"fitted: median |error| time {fitted_time:.1f} %, filament {fitted_filament:.1f} %; "
        f"leave-one-out: time {loo_time:.1f} %, filament {loo_filament:.1f} %"
    )


def main() -> None:
    # trimesh logs a traceback for every ASCII STL it first misreads (then reads): noise here.
    logging.getLogger("trimesh").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="bench-estimator-") as temporary:
        directory = Path(temporary)
        (directory / "models").mkdir()
        parts = collect_parts(directory / "models")
        rows = asyncio.run(measure(parts, directory))
    if not rows:
        sys.exit("no part could be measured")
    report(rows)


if __name__ == "__main__":
    main()
