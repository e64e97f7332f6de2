"""The Slicer contract, run against every adapter in ADAPTERS (an adapter that cannot run here is skipped)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import trimesh

from services.demo.meshes import DEMO_PARTS, export_model
from slicer_adapters.curaengine import CuraEngineCli
from slicer_adapters.errors import SlicerError, SlicerTimeout
from slicer_adapters.estimator.adapter import BuiltinEstimator
from slicer_adapters.models import BuildVolume, PrintProfile, SliceJob, SliceResult
from slicer_adapters.ports import Slicer
from slicer_adapters.prusaslicer import PrusaSlicerCli

# Where .ci/run extracts the JSON of Debian's cura package; absent -> the CuraEngine adapter is skipped.
CURA_RESOURCES = (
    Path(__file__).resolve().parents[2] / ".cache" / "cura" / "usr" / "share" / "cura" / "resources"
)

# (name, factory): each factory takes a directory the adapter may use as its own cache.
ADAPTERS: list[tuple[str, Callable[[Path], Slicer]]] = [
    ("prusaslicer", lambda cache: PrusaSlicerCli(cache_dir=cache)),
    ("curaengine", lambda cache: CuraEngineCli(resources_dir=CURA_RESOURCES)),
    ("estimator", lambda cache: BuiltinEstimator()),
]

BED = BuildVolume(x_mm=250, y_mm=210, z_mm=210)
CUBE_MM = 20.0
DEMO_PART = "SF-BRK-1040"  # the L-bracket: 30 mm tall, and the quickest demo part to slice
# Slicers round the first and last layers differently; a few layers either way is the same part.
LAYER_TOLERANCE = 3


@pytest.fixture(scope="module", params=ADAPTERS, ids=[name for name, _ in ADAPTERS])
def factory(request: pytest.FixtureRequest) -> Callable[[Path], Slicer]:
    make: Callable[[Path], Slicer] = request.param[1]
    return make


@pytest.fixture(scope="module")
async def slicer(factory: Callable[[Path], Slicer], tmp_path_factory: pytest.TempPathFactory) -> Slicer:
    """One adapter per module (its cache warms once), skipped when it cannot run here."""
    adapter = factory(tmp_path_factory.mktemp("slicer-cache"))
    if await adapter.version() is None:
        pytest.skip(f"{adapter.name} is not installed here (binary or its data files missing)")
    return adapter


def write_stl(directory: Path, name: str, mesh: trimesh.Trimesh) -> Path:
    path = directory / f"{name}.stl"
    path.write_bytes(export_model(mesh, "stl-binary"))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, float]]:
    """name -> (binary STL resting on z=0, height in mm)."""
    directory = tmp_path_factory.mktemp("models")
    cube = trimesh.creation.box((CUBE_MM, CUBE_MM, CUBE_MM))
    cube.apply_translation((0, 0, CUBE_MM / 2))
    part = next(p for p in DEMO_PARTS if p.part_number == DEMO_PART).build()
    return {
        "cube": (write_stl(directory, "cube", cube), CUBE_MM),
        "demo-part": (write_stl(directory, DEMO_PART, part), float(part.extents[2])),
    }


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


def make_job(
    tmp_path: Path,
    model: Path,
    *,
    profile: PrintProfile | None = None,
    timeout_s: float = 60.0,
    name: str = "work",
) -> SliceJob:
    workdir = tmp_path / name
    workdir.mkdir()
    return SliceJob(
        model_path=model,
        profile=profile or PrintProfile(),
        build_volume=BED,
        workdir=workdir,
        timeout_s=timeout_s,
    )


async def check_result(slicer: Slicer, job: SliceJob, result: SliceResult, *, height_mm: float) -> None:
    assert result.gcode_path.is_file()
    assert result.gcode_path.stat().st_size > 0
    assert result.gcode_path.resolve().is_relative_to(job.workdir.resolve())
    assert result.print_seconds > 0
    assert result.filament_mm3 > 0
    expected_g = result.filament_mm3 * job.profile.filament_density_g_cm3 / 1000
    assert result.filament_g == pytest.approx(expected_g, rel=0.01)
    first = job.profile.first_layer_height_mm
    expected_layers = 1 + round((height_mm - first) / job.profile.layer_height_mm)
    assert abs(result.layer_count - expected_layers) <= LAYER_TOLERANCE, (result.layer_count, expected_layers)
    assert result.slicer == slicer.name
    assert result.slicer_version
    assert result.slicer_version == await slicer.version()


@pytest.mark.parametrize("model", ["cube", "demo-part"])
async def test_slices_a_model(
    slicer: Slicer, models: dict[str, tuple[Path, float]], tmp_path: Path, model: str
) -> None:
    path, height = models[model]
    job = make_job(tmp_path, path)
    await check_result(slicer, job, await slicer.slice(job), height_mm=height)


async def test_thinner_layers_give_more_layers_and_a_longer_print(
    slicer: Slicer, models: dict[str, tuple[Path, float]], tmp_path: Path
) -> None:
    cube, height = models["cube"]
    coarse_job = make_job(tmp_path, cube, profile=PrintProfile(layer_height_mm=0.3), name="coarse")
    fine_job = make_job(tmp_path, cube, profile=PrintProfile(layer_height_mm=0.1), name="fine")
    coarse, fine = await slicer.slice(coarse_job), await slicer.slice(fine_job)
    await check_result(slicer, fine_job, fine, height_mm=height)
    await check_result(slicer, coarse_job, coarse, height_mm=height)
    assert fine.layer_count > coarse.layer_count
    assert fine.print_seconds > coarse.print_seconds


async def test_more_infill_uses_more_filament(
    slicer: Slicer, models: dict[str, tuple[Path, float]], tmp_path: Path
) -> None:
    cube, _ = models["cube"]
    sparse = await slicer.slice(make_job(tmp_path, cube, profile=PrintProfile(infill_density=0.1), name="a"))
    dense = await slicer.slice(make_job(tmp_path, cube, profile=PrintProfile(infill_density=0.6), name="b"))
    assert dense.filament_mm3 > sparse.filament_mm3


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(bytes(80) + (0).to_bytes(4, "little"), id="zero-faces"),
        pytest.param(b"not a mesh, just bytes\n" * 40, id="garbage"),
        pytest.param(b"", id="empty-file"),
    ],
)
async def test_a_model_without_faces_raises(slicer: Slicer, tmp_path: Path, content: bytes) -> None:
    model = tmp_path / "broken.stl"
    model.write_bytes(content)
    with pytest.raises(SlicerError):
        await slicer.slice(make_job(tmp_path, model))


async def test_a_tiny_timeout_raises_slicer_timeout(
    slicer: Slicer, models: dict[str, tuple[Path, float]], tmp_path: Path
) -> None:
    cube, _ = models["cube"]
    with pytest.raises(SlicerTimeout):
        await slicer.slice(make_job(tmp_path, cube, timeout_s=0.001))


async def test_writes_only_in_its_workdir_and_cache(
    factory: Callable[[Path], Slicer],
    models: dict[str, tuple[Path, float]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Everything a stray write could reach is moved under tmp_path: this process's cwd, HOME and temp dir.
    for name in ("cwd", "home", "tmp"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    model = tmp_path / "model" / "cube.stl"
    model.parent.mkdir()
    model.write_bytes(models["cube"][0].read_bytes())
    cache = tmp_path / "cache"
    slicer = factory(cache)
    if await slicer.version() is None:
        pytest.skip(f"{slicer.name} is not installed here (binary or its data files missing)")

    job = make_job(tmp_path, model)
    await slicer.slice(job)

    written = files_under(tmp_path) - {model}
    assert written
    assert {
        path for path in written if not (path.is_relative_to(job.workdir) or path.is_relative_to(cache))
    } == set()
