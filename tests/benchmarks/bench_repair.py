"""Benchmark parts_catalog.repair on the corpus files whose manifest names a defect repair should fix.

Run from the project root:  .venv/bin/python tests/benchmarks/bench_repair.py

Files are picked by their manifest ``ground_truth`` / ``notes`` (holes, flipped or inside-out facets, gaps
for a nearby merge, unconnected facets). For each it prints whether the repaired mesh is watertight and
consistently wound, and its volume against the upstream reference: the admesh ``*-good`` sibling when that is
a clean solid, else the clean member of the same admesh family ("basic" first) with as many bodies as the
repaired mesh. Volumes are compared in file units (repair does not care about units).
"""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

from parts_catalog.formats import ArchiveLimits, ModelFileError, detect_model_format
from parts_catalog.geometry import GeometryRejected, MeshLimits, analyse, load_model
from parts_catalog.repair import repair

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
ARCHIVE_LIMITS = ArchiveLimits(
    max_uncompressed_bytes=1000 * 1024 * 1024, max_compression_ratio=100.0, max_entries=1000
)
DEFECT = re.compile(r"hole|flipped|inside-out|nearby|exact vertex merge|unconnected|reversed", re.IGNORECASE)
GOAL_VOLUME_RELATIVE = 0.01


def _rows() -> dict[str, dict[str, str]]:
    with (CORPUS / "manifest.csv").open(newline="") as manifest:
        return {row["file"].removeprefix("meshes/"): row for row in csv.DictReader(manifest)}


def _is_clean(row: dict[str, str]) -> bool:
    return row["is_volume"] == "True"


def _reference(name: str, bodies: int, rows: dict[str, dict[str, str]]) -> str | None:
    good = name.replace("-bad.", "-good.")
    if good != name and good in rows and _is_clean(rows[good]):
        return good
    family = name[: name.index("_", name.index("__") + 2) + 1] if name.startswith("admesh__") else None
    if family is None:
        return None
    members = sorted(
        (other for other in rows if other.startswith(family)), key=lambda other: "basic" not in other
    )
    return next(
        (other for other in members if _is_clean(rows[other]) and int(rows[other]["bodies"]) == bodies), None
    )


def main() -> None:
    if not (CORPUS / "manifest.csv").is_file():
        print(f"skipped: the corpus is not at {CORPUS}")
        return
    rows = _rows()
    picked = sorted(
        name for name, row in rows.items() if DEFECT.search(row["ground_truth"] + " " + row["notes"])
    )
    header = (
        f"{'file':44} {'before':34} {'closed':6} {'wound':5} {'verdict':7} {'volume':>9} {'ms':>6}  steps"
    )
    print(header)
    print("-" * len(header))
    closed_count = compared = within = 0
    for name in picked:
        path = CORPUS / "meshes" / name
        try:
            loaded = load_model(
                path, detect_model_format(path, archive_limits=ARCHIVE_LIMITS).format, limits=MeshLimits()
            )
        except (ModelFileError, GeometryRejected) as exc:
            print(f"{name:44} not loaded: {exc}")
            continue
        started = time.perf_counter()
        outcome = repair(loaded.mesh)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        facts = analyse(outcome.mesh)
        before = outcome.report.before
        defects = ",".join(
            label
            for label, present in (
                ("open", before.boundary_edges > 0),
                ("flipped", not before.winding_consistent),
                ("inverted", before.inverted_bodies > 0),
                ("non-manifold", before.non_manifold_edges > 0),
                ("duplicates", before.duplicate_faces > 0),
            )
            if present
        )
        closed = facts.watertight and facts.winding_consistent and facts.inverted_bodies == 0
        closed_count += closed
        reference = _reference(name, facts.bodies, rows)
        volume = "-"
        if reference is not None:
            error = facts.volume_mm3 / float(rows[reference]["volume"]) - 1.0
            volume = f"{error:+.3%}"
            compared += 1
            within += closed and abs(error) <= GOAL_VOLUME_RELATIVE
        steps = " ".join(
            step.name + (" (reverted)" if step.reverted else "")
            for step in outcome.report.steps
            if step.changed or step.reverted
        )
        print(
            f"{name:44} {defects or 'none':34} {closed!s:6} {facts.winding_consistent!s:5} "
            f"{outcome.report.verdict.value:7} {volume:>9} {elapsed_ms:6.1f}  {steps}"
            + (f"  [vs {reference}]" if reference else "")
        )
    print("-" * len(header))
    print(f"{len(picked)} files: {closed_count} watertight, consistently wound and outward after repair")
    goal = f"within {GOAL_VOLUME_RELATIVE:.0%} of its volume"
    print(f"{compared} with an upstream reference: {within} of them {goal}")


if __name__ == "__main__":
    main()
