"""Load a model file into one millimetre mesh and check whether it can be printed, as a versioned report.

``check_model`` is the entry point: it never raises for a bad model (only ``OSError`` for the path itself) and
always returns a ``GeometryReport`` whose ``verdict`` is one of

* ``ok``: print it as it is;
* ``repairable``: printable after ``parts_catalog.repair.repair`` or a slicer's own repair (holes, flipped or
  inside-out facets, duplicate facets, edges shared by more than two facets);
* ``rejected``: cannot be printed, or not fixed safely without the customer.

and whose ``reasons`` are machine-readable codes (``Reason``); which code leads to which verdict, and which
codes are only warnings, is tabled in ``parts_catalog.geometry.reasons``.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from parts_catalog.formats import ModelFormat
from parts_catalog.geometry.facts import MeshFacts, Vector3, analyse
from parts_catalog.geometry.reading import GeometryRejected, MeshLimits, UnitSource, load_model
from parts_catalog.geometry.reasons import REJECTING, Reason, Verdict, verdict_for
from parts_catalog.reports import REPORT_VERSION
from parts_catalog.units import Unit

# Plausible printed parts: largest extent 5..1000 mm. Outside it, a file is far more likely in the wrong
# unit than a real part (GEOMETRY-AND-SLICING.md: 58 of 153 real files, and both slicers fail on them).
_PLAUSIBLE_MM = (5.0, 1000.0)
# When guessing a unit, prefer one that puts the part in the size range of typical spare parts (the corpus
# parts whose unit is known span about 10..350 mm); fall back to the plausible range.
_TYPICAL_MM = (10.0, 500.0)
# Candidates tried in order: inch first (US CAD exports are the most common mismatch), then cm, then m;
# micron for parts far too large.
_GUESSES_TOO_SMALL = (Unit.INCH, Unit.CENTIMETER, Unit.METER)
_GUESSES_TOO_LARGE = (Unit.MICRON,)


class UnitGuess(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: Unit | None  # None: no unit makes this a plausible part
    size_mm: Vector3 | None  # the size if the file were in ``unit``
    reason: str


class GeometryReport(BaseModel):
    """The stored outcome of ``check_model``. Bump ``REPORT_VERSION`` on any incompatible change."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = REPORT_VERSION
    format: ModelFormat
    verdict: Verdict
    reasons: list[Reason]  # verdict-driving codes, rejecting ones first; empty when ok
    warnings: list[Reason]  # codes that do not change the verdict
    detail: str | None = None  # human-readable cause of a load rejection
    unit: Unit | None  # None when the file was rejected before its unit was known
    unit_source: UnitSource | None
    unit_guess: UnitGuess | None = None  # only with units_suspect
    facts: MeshFacts | None  # None when rejected before a mesh existed
    elapsed_ms: float


def geometry_reasons(facts: MeshFacts) -> tuple[list[Reason], list[Reason]]:
    """The reason and warning codes that ``facts`` alone imply (everything but units and load failures).

    Returns:
        (reasons, warnings): reasons drive the verdict (see ``reasons``), warnings do not.
    """
    if facts.faces == 0:
        return [Reason.EMPTY_MESH], []
    reasons: list[Reason] = []
    if facts.flat:
        reasons.append(Reason.FLAT_MESH)
    if facts.boundary_edges:
        reasons.append(Reason.NOT_WATERTIGHT)
    if not facts.winding_consistent:
        reasons.append(Reason.INCONSISTENT_WINDING)
    if facts.inverted_bodies:
        reasons.append(Reason.INVERTED_BODIES)
    if facts.duplicate_faces:
        reasons.append(Reason.DUPLICATE_FACES)
    warnings = [Reason.DEGENERATE_FACES] if facts.degenerate_faces else []
    if facts.non_manifold_edges:
        # Balanced non-manifold edges (every body closed) are printable as they are: see ``reasons``.
        (warnings if facts.volume_reliable else reasons).append(Reason.NON_MANIFOLD_EDGES)
    return reasons, warnings


def check_model(
    path: Path, fmt: ModelFormat, *, limits: MeshLimits, declared_unit: Unit | None = None
) -> GeometryReport:
    """Load ``path`` and judge whether it can be printed.

    Args:
        path: the model file.
        fmt: its format, from ``parts_catalog.formats.detect_model_format``.
        limits: the face cap (see ``MeshLimits``).
        declared_unit: the unit the customer declared; without it STL/OBJ are assumed millimetres and
            checked for a suspect size, 3MF uses its own unit.

    Returns:
        A report for every model, bad ones included: ``verdict``, ``reasons`` (rejecting codes first),
        ``warnings``, the unit used and ``facts`` (None when no mesh could be built).

    Raises:
        OSError: ``path`` cannot be opened or read. Nothing else, whatever the content.
    """
    started = time.perf_counter()
    try:
        loaded = load_model(path, fmt, limits=limits, declared_unit=declared_unit)
    except GeometryRejected as exc:
        return GeometryReport(
            format=fmt,
            verdict=Verdict.REJECTED,
            reasons=[exc.reason],
            warnings=[],
            detail=exc.message,
            unit=declared_unit,
            unit_source="declared" if declared_unit is not None else None,
            facts=None,
            elapsed_ms=_elapsed_ms(started),
        )
    facts = analyse(loaded.mesh)
    reasons, warnings = geometry_reasons(facts)
    guess = None
    if loaded.unit_source == "assumed" and not facts.flat:
        guess = _unit_guess(facts.size)
        if guess is not None:
            reasons.append(Reason.UNITS_SUSPECT)
    reasons.sort(key=lambda reason: reason not in REJECTING)
    return GeometryReport(
        format=fmt,
        verdict=verdict_for(reasons),
        reasons=reasons,
        warnings=warnings,
        unit=loaded.unit,
        unit_source=loaded.unit_source,
        unit_guess=guess,
        facts=facts,
        elapsed_ms=_elapsed_ms(started),
    )


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)


def _unit_guess(size: Vector3) -> UnitGuess | None:
    """None when the size is plausible in millimetres; otherwise the likeliest unit and why."""
    largest = max(size)
    low, high = _PLAUSIBLE_MM
    if low <= largest <= high:
        return None
    candidates = _GUESSES_TOO_SMALL if largest < low else _GUESSES_TOO_LARGE
    for window in (_TYPICAL_MM, _PLAUSIBLE_MM):
        for unit in candidates:
            scaled = largest * unit.millimetres
            if window[0] <= scaled <= window[1]:
                return UnitGuess(
                    unit=unit,
                    size_mm=(
                        size[0] * unit.millimetres,
                        size[1] * unit.millimetres,
                        size[2] * unit.millimetres,
                    ),
                    reason=(
                        f"the largest extent is {largest:.4g} units, implausible for a part in millimetres; "
                        f"in {unit.value}s it would be {scaled:.4g} mm"
                    ),
                )
    return UnitGuess(
        unit=None,
        size_mm=None,
        reason=(
            f"the largest extent is {largest:.4g} units: outside {low:g}..{high:g} mm and no common unit "
            "makes it a printable part; check the export units or the part's real size"
        ),
    )
