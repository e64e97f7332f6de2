"""Geometry checks and repair over the shared corpus of 92 real models (../shared/corpus, see its README).

Every file must end with a verdict, quickly and without an exception; where the manifest is authoritative
(3MF Consortium MUSTFAIL samples, files trimesh measured as clean solids, upstream "bad" fixtures) the verdict
must agree with it.
"""

from __future__ import annotations

import csv
import functools
import json
import time
from pathlib import Path

import pytest

from parts_catalog.formats import ArchiveLimits, ModelFileError, ModelFormat, detect_model_format
from parts_catalog.geometry import (
    GeometryReport,
    MeshLimits,
    Reason,
    Verdict,
    analyse,
    check_model,
    load_model,
)
from parts_catalog.repair import RepairVerdict, repair

CORPUS = (
    Path(__file__).resolve().parents[3] / "shared" / "corpus"
)  # tests/integration -> tests -> main -> /work
if not (CORPUS / "manifest.csv").is_file():
    pytest.skip(f"the shared mesh corpus is not at {CORPUS}", allow_module_level=True)

with (CORPUS / "manifest.csv").open(newline="") as manifest:
    ROWS = {row["file"].removeprefix("meshes/"): row for row in csv.DictReader(manifest)}

# The platform's defaults (services.config.Settings.archive_limits).
ARCHIVE_LIMITS = ArchiveLimits(
    max_uncompressed_bytes=1000 * 1024 * 1024, max_compression_ratio=100.0, max_entries=1000
)
LIMITS = MeshLimits()
# The slowest corpus file (a 225k-facet 3MF) takes under 1 s here; 20 s leaves room for a loaded CI machine.
PER_FILE_SECONDS = 20.0
PLAUSIBLE_MM = (5.0, 1000.0)

# Upstream fixtures with a known defect that repair must fix (ground truth in the manifest), each with the
# file whose volume the repaired mesh must match: the admesh "basic" model the "bad" ones were made from.
REPAIRABLE_FIXTURES = {
    "admesh__block_exact-bad.stl": "admesh__block_basic.stl",
    "admesh__block_fill-holes-bad.stl": "admesh__block_basic.stl",
    "admesh__block_fill-holes-good.stl": "admesh__block_basic.stl",
    "admesh__block_nearby-bad.stl": "admesh__block_basic.stl",
    "admesh__block_normal-directions-bad.stl": "admesh__block_basic.stl",
    "admesh__block_normal-directions-good.stl": "admesh__block_basic.stl",
    "admesh__block_remove-unconnected-bad.stl": "admesh__block_merge.stl",  # the same two blocks
    "admesh__conveyor_fill-holes-bad.stl": "admesh__conveyor_basic.stl",
    "admesh__conveyor_nearby-bad.stl": "admesh__conveyor_basic.stl",
    "admesh__conveyor_remove-unconnected-bad.stl": "admesh__conveyor_basic.stl",
}
# Files without an upstream reference that repair closes too (volume not compared): open, flipped, T-junction
# cracks (featuretype.3MF), and solids glued face to face (opposite duplicate facets cancel).
ALSO_CLOSED_BY_REPAIR = [
    "trimesh__multibody.stl",
    "trimesh__teapot.stl",
    "trimesh__featuretype.3MF",
    "trimesh__wallhole.obj",
    "trimesh__joined_tetrahedra.obj",
    "numpystl__stl_tests_triamid.stl",
    "prusa__frog_legs.obj",
    "prusa__extruder_idler_quads.obj",
    "c3d__teapot.obj",
    "c3d__suzanne.obj",
    "curadeb__twotrees300x300_generic.stl",
]


def format_of(name: str) -> ModelFormat:
    return detect_model_format(CORPUS / "meshes" / name, archive_limits=ARCHIVE_LIMITS).format


# Refused at upload by format detection, so they never reach the geometry checks; that refusal, with its
# code, is their verdict.
REFUSED_AT_UPLOAD = {
    "admesh__conveyor_basic.off": "unsupported_format",
    "trimesh__emptyIO_stl_empty_bin.stl": "empty_file",
}


@functools.cache
def checked(name: str) -> tuple[GeometryReport, float]:
    started = time.perf_counter()
    report = check_model(CORPUS / "meshes" / name, format_of(name), limits=LIMITS)
    return report, time.perf_counter() - started


def manifest_says_clean_and_plausible(row: dict[str, str]) -> bool:
    clean = all(row[column] == "True" for column in ("is_watertight", "is_winding_consistent", "is_volume"))
    largest = max(float(row[axis] or 0.0) for axis in ("bbox_x", "bbox_y", "bbox_z"))
    return clean and PLAUSIBLE_MM[0] <= largest <= PLAUSIBLE_MM[1]


@pytest.mark.parametrize("name", sorted(ROWS))
def test_every_file_ends_with_a_verdict_in_time(name: str) -> None:
    if name.removeprefix("meshes/") in REFUSED_AT_UPLOAD:
        with pytest.raises(ModelFileError) as refused:
            format_of(name)
        assert refused.value.code == REFUSED_AT_UPLOAD[name.removeprefix("meshes/")]
        return
    report, seconds = checked(name)

    assert seconds < PER_FILE_SECONDS
    assert report.verdict in set(Verdict)
    if report.verdict is not Verdict.OK:
        assert report.reasons
    json.dumps(report.model_dump(mode="json"))


@pytest.mark.parametrize("name", sorted(name for name in ROWS if "MUSTFAIL" in name))
def test_must_fail_3mf_is_rejected(name: str) -> None:
    report, _ = checked(name)

    assert report.verdict is Verdict.REJECTED
    assert report.reasons == [Reason.INVALID_3MF]


@pytest.mark.parametrize(
    "name", sorted(name for name, row in ROWS.items() if manifest_says_clean_and_plausible(row))
)
def test_clean_plausible_solid_is_ok(name: str) -> None:
    report, _ = checked(name)

    assert report.verdict is Verdict.OK, report.reasons


@pytest.mark.parametrize(
    "name",
    sorted(n for n, row in ROWS.items() if row["is_watertight"] == "True" and n not in REFUSED_AT_UPLOAD),
)
def test_closed_file_has_the_manifest_body_count(name: str) -> None:
    report, _ = checked(name)

    assert report.facts is not None
    assert report.facts.bodies == int(ROWS[name]["bodies"])


def test_empty_stl_is_rejected_even_when_it_reaches_the_checker() -> None:
    # Detection already refuses it (empty_file); the checker must not pass it either.
    report = check_model(
        CORPUS / "meshes" / "trimesh__emptyIO_stl_empty_bin.stl", ModelFormat.STL_BINARY, limits=LIMITS
    )

    assert report.verdict is Verdict.REJECTED
    assert report.reasons == [Reason.EMPTY_MESH]


def test_cr_only_ascii_stl_is_a_parse_error() -> None:
    report, _ = checked("prusa__test_stl_ASCII_20mmbox-CR.stl")

    assert report.reasons == [Reason.PARSE_ERROR]


@pytest.mark.parametrize("name", sorted(REPAIRABLE_FIXTURES) + ALSO_CLOSED_BY_REPAIR)
def test_repair_closes_known_defects(name: str) -> None:
    loaded = load_model(CORPUS / "meshes" / name, format_of(name), limits=LIMITS)

    outcome = repair(loaded.mesh)

    facts = analyse(outcome.mesh)
    assert outcome.report.verdict is RepairVerdict.OK, outcome.report.reasons
    assert facts.watertight
    assert facts.winding_consistent
    assert facts.inverted_bodies == 0
    if name in REPAIRABLE_FIXTURES:
        reference = float(ROWS[REPAIRABLE_FIXTURES[name]]["volume"])
        assert facts.volume_mm3 == pytest.approx(reference, rel=0.01)
