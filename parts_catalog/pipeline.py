"""The geometry steps a worker runs on one model file, in a worker process.

Each function takes paths and plain values and returns plain, JSON-able values, so that it can cross a
process boundary; none touches the database or the blob store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from parts_catalog.formats import ModelFormat
from parts_catalog.geometry import MeshLimits, Unit, Verdict, check_model, load_model
from parts_catalog.orientation import apply_orientation, choose_orientation
from parts_catalog.repair import repair
from parts_catalog.reports import REPAIRED_FORMAT, REPAIRED_UNIT


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    report: dict[str, Any]
    printable: bool
    repaired: bool  # a repaired binary STL in millimetres, at the origin, was written to ``repaired_out``


def check_and_repair(
    path: Path, fmt: str, *, max_faces: int, declared_unit: str | None, repaired_out: Path
) -> CheckOutcome:
    """Check a model and, when the check says it is repairable, repair it.

    Returns the check report (with the repair report and the repaired model's own check under
    ``"repair"``), whether the model can be printed, and whether ``repaired_out`` was written.

    The repaired model is written with its bounding box starting at the origin, and ``"repair"`` holds
    ``"translation_mm"``, the vector added to every vertex (subtract it for the upload's position). Binary STL
    stores float32, whose 24-bit mantissa resolves only 2**-24 of a coordinate's magnitude: 0.0625 mm at
    1e6 mm, where a detailed part's vertices merge and the repaired file would check worse than the upload.
    At the origin the resolution is that of the part's own size. Nothing downstream reads the position:
    printing moves the part to the origin again (``orientation``) and the slicers centre it on the bed.
    """
    limits = MeshLimits(max_faces=max_faces)
    unit = Unit(declared_unit) if declared_unit else None
    report = check_model(path, ModelFormat(fmt), limits=limits, declared_unit=unit)
    document = report.model_dump(mode="json")
    if report.verdict is not Verdict.REPAIRABLE:
        return CheckOutcome(report=document, printable=report.verdict is Verdict.OK, repaired=False)

    outcome = repair(load_model(path, ModelFormat(fmt), limits=limits, declared_unit=unit).mesh)
    document["repair"] = outcome.report.model_dump(mode="json")
    if outcome.report.verdict != "ok":
        return CheckOutcome(report=document, printable=False, repaired=False)
    translation = _write_at_origin(outcome.mesh, repaired_out)
    document["repair"]["translation_mm"] = translation
    after = check_model(repaired_out, REPAIRED_FORMAT, limits=limits, declared_unit=REPAIRED_UNIT)
    document["repair"]["check"] = after.model_dump(mode="json")
    return CheckOutcome(report=document, printable=after.verdict is Verdict.OK, repaired=True)


def _write_at_origin(mesh: trimesh.Trimesh, path: Path) -> list[float]:
    """Write ``mesh`` as binary STL moved so its bounding box starts at the origin; returns the move."""
    translation = -np.asarray(mesh.bounds[0], dtype=np.float64)
    placed = mesh.copy()
    placed.apply_translation(translation)  # in float64, before the float32 write
    placed.export(path, file_type="stl")
    return [float(value) for value in translation]


def orient_for_printing(
    path: Path,
    fmt: str,
    *,
    max_faces: int,
    declared_unit: str | None,
    build_volume: tuple[float, float, float],
    out_stl: Path,
) -> dict[str, Any]:
    """Choose the print orientation for a bed; when it fits, write the oriented binary STL to ``out_stl``.

    Returns the orientation as JSON (``fits`` False and a ``reason`` when it fits in no orientation).
    """
    unit = Unit(declared_unit) if declared_unit else None
    mesh = load_model(path, ModelFormat(fmt), limits=MeshLimits(max_faces=max_faces), declared_unit=unit).mesh
    orientation = choose_orientation(mesh, build_volume)
    if orientation.fits:
        apply_orientation(mesh, orientation).export(out_stl, file_type="stl")
    return orientation.model_dump(mode="json")
