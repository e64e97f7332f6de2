"""Both CLI slicers on real-world STL files from ../shared/corpus (skipped when the corpus is absent).

The manifest records what PrusaSlicer 2.5 and CuraEngine 4.13 did with each file. Files PrusaSlicer sliced,
in millimetres (largest extent 10-200: many corpus files are in inches or metres) and within the bed, must
give a result from each adapter whose manifest column says "ok", and EmptySliceOutput (never a result) from
one whose column says it wrote empty G-code. And a memory limit too small for a slicer is a retryable
resource error, never a permanent failure.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

from slicer_adapters.errors import EmptySliceOutput, SlicerResourceExhausted
from slicer_adapters.models import BuildVolume, PrintProfile, SliceJob, SliceResult
from slicer_adapters.ports import Slicer
from tests.contract.test_slicers import ADAPTERS, LAYER_TOLERANCE

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
BED = BuildVolume(x_mm=250, y_mm=210, z_mm=210)  # the default bed the selection is checked against
# Largest extents outside this range are almost always inches or metres (corpus README).
EXTENT_MM = (10.0, 200.0)
# Bigger files take seconds each in one slicer or the other; the suite must stay quick.
MAX_FACES = 10_000
HANDFUL = 6
# Measured: under 8 MiB of RLIMIT_DATA PrusaSlicer aborts starting its threads and CuraEngine exits 1 with
# "libgomp: Thread creation failed" (see slicer_adapters/_process.py).
TOO_LITTLE_MEMORY = 8 * 1024**2
CLI_ADAPTERS = [(name, make) for name, make in ADAPTERS if name in {"prusaslicer", "curaengine"}]
# The manifest's column for each adapter.
MANIFEST_COLUMN = {"prusaslicer": "prusaslicer_2.5", "curaengine": "curaengine_4.13"}


def corpus_rows() -> list[dict[str, str]]:
    """A handful of in-bed, millimetre STL files PrusaSlicer sliced, spread over the sorted manifest, and
    those among them CuraEngine is recorded to fail on."""
    manifest = CORPUS / "manifest.csv"
    if not manifest.is_file():
        return []
    with manifest.open(newline="") as file:
        rows = list(csv.DictReader(file))
    chosen = []
    for row in sorted(rows, key=lambda r: r["file"]):
        if not row["bbox_x"]:  # trimesh could not load it
            continue
        size = (float(row["bbox_x"]), float(row["bbox_y"]), float(row["bbox_z"]))
        fits = size[0] <= BED.x_mm and size[1] <= BED.y_mm and size[2] <= BED.z_mm
        in_mm = EXTENT_MM[0] <= max(size) <= EXTENT_MM[1]
        sliced = row["prusaslicer_2.5"].startswith("ok") and row["file"].lower().endswith(".stl")
        if fits and in_mm and sliced and int(row["faces"]) <= MAX_FACES:
            chosen.append(row)
    spread = chosen[:: max(1, len(chosen) // HANDFUL)][:HANDFUL]
    # Plus every file an adapter is recorded to fail on: those check that a failure is never a result.
    failed = [row for row in chosen if not all(row[c].startswith("ok") for c in MANIFEST_COLUMN.values())]
    return spread + [row for row in failed if row not in spread]


ROWS = corpus_rows()
pytestmark = pytest.mark.skipif(not ROWS, reason=f"the mesh corpus is not at {CORPUS}")


@pytest.mark.parametrize(("adapter", "make"), CLI_ADAPTERS, ids=[name for name, _ in CLI_ADAPTERS])
@pytest.mark.parametrize("row", ROWS, ids=[Path(row["file"]).name for row in ROWS])
async def test_corpus_file(
    adapter: str, make: Callable[[Path], Slicer], row: dict[str, str], tmp_path: Path
) -> None:
    slicer = make(tmp_path / "cache")
    if await slicer.version() is None:
        pytest.skip(f"{adapter} is not installed here (binary or its data files missing)")
    workdir = tmp_path / "work"
    workdir.mkdir()
    job = SliceJob(
        model_path=CORPUS / row["file"],
        profile=PrintProfile(),
        build_volume=BED,
        workdir=workdir,
        timeout_s=60,
    )
    if not row[MANIFEST_COLUMN[adapter]].startswith("ok"):
        # CuraEngine exits 0 with empty G-code on some meshes PrusaSlicer repairs (trimesh__round.stl).
        with pytest.raises(EmptySliceOutput):
            await slicer.slice(job)
        return
    result: SliceResult = await slicer.slice(job)
    assert result.gcode_path.stat().st_size > 0
    assert result.print_seconds > 0
    assert result.filament_mm3 > 0
    # The part is sliced as it lies in the file. A second body floating above the first leaves empty layers
    # that PrusaSlicer does not print (admesh__block_merge.stl: 40 layers for 8.9 mm), so only one body pins
    # the count from below.
    expected = float(row["bbox_z"]) / job.profile.layer_height_mm
    assert result.layer_count <= expected + LAYER_TOLERANCE, (result.layer_count, expected)
    if row["bodies"] == "1":
        assert result.layer_count >= expected - LAYER_TOLERANCE, (result.layer_count, expected)


@pytest.mark.parametrize(("adapter", "make"), CLI_ADAPTERS, ids=[name for name, _ in CLI_ADAPTERS])
async def test_too_little_memory_is_resource_exhaustion(
    adapter: str, make: Callable[[Path], Slicer], tmp_path: Path
) -> None:
    slicer = make(tmp_path / "cache")
    if await slicer.version() is None:
        pytest.skip(f"{adapter} is not installed here (binary or its data files missing)")
    workdir = tmp_path / "work"
    workdir.mkdir()
    job = SliceJob(
        model_path=CORPUS / ROWS[0]["file"],
        profile=PrintProfile(),
        build_volume=BED,
        workdir=workdir,
        memory_limit_bytes=TOO_LITTLE_MEMORY,
    )
    with pytest.raises(SlicerResourceExhausted) as caught:
        await slicer.slice(job)
    assert caught.value.retryable
