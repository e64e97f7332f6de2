"""slicer_adapters.estimator: the geometry-only estimate and the BuiltinEstimator adapter."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import trimesh
from manifold3d import CrossSection, Manifold

from slicer_adapters import gcode
from slicer_adapters.errors import EmptySliceOutput, SlicerError, SlicerTimeout
from slicer_adapters.estimator import adapter as estimator
from slicer_adapters.estimator.adapter import BuiltinEstimator, format_duration, mesh_stats
from slicer_adapters.estimator.model import estimate
from slicer_adapters.models import BuildVolume, MeshStats, PrintProfile, SliceJob

BED = BuildVolume(x_mm=250, y_mm=210, z_mm=210)


def _cube(size: float) -> trimesh.Trimesh:
    cube: trimesh.Trimesh = trimesh.creation.box((size, size, size))
    cube.apply_translation((0, 0, size / 2))
    return cube


def _cube_stats(size: float = 20.0) -> MeshStats:
    return mesh_stats(_cube(size))


def _write_stl(directory: Path, mesh: trimesh.Trimesh, name: str = "model") -> Path:
    path = directory / f"{name}.stl"
    path.write_bytes(trimesh.exchange.stl.export_stl(mesh))
    return path


def _job(tmp_path: Path, model: Path, *, timeout_s: float = 60.0, name: str = "work") -> SliceJob:
    workdir = tmp_path / name
    workdir.mkdir()
    return SliceJob(
        model_path=model, profile=PrintProfile(), build_volume=BED, workdir=workdir, timeout_s=timeout_s
    )


def test_a_20mm_cube_gives_plausible_figures() -> None:
    # By hand, default profile (0.2 mm layers, 2 perimeters, 4 top + 3 bottom layers, 20 % infill):
    # 100 layers. Walls: 80 mm of outline x 2 beads x 0.407 mm spacing x 20 mm = 1.30 cm3. Skins: 7 layers of
    # the ~337 mm2 inside x 0.2 mm = 0.47 cm3. Sparse: the remaining ~6.2 cm3 x 20 % = 1.25 cm3. About
    # 3.0 cm3 in all (PrusaSlicer 2.5: 3.21 cm3). Time: 16 m of walls at 25-45 mm/s (~500 s), 6 m of solid
    # infill at 40 mm/s (~150 s) and 15 m of sparse at 80 mm/s (~190 s) is ~14 min before acceleration and
    # layer changes (PrusaSlicer 2.5: 17 min 52 s).
    result = estimate(_cube_stats(), PrintProfile())

    assert result.layer_count == 100
    assert 2_500 <= result.filament_mm3 <= 4_500
    assert 15 * 60 <= result.print_seconds <= 35 * 60
    assert result.filament_g == pytest.approx(result.filament_mm3 * 1.24 / 1000)


def test_thinner_layers_give_more_layers_and_a_longer_print() -> None:
    coarse = estimate(_cube_stats(), PrintProfile(layer_height_mm=0.3))
    fine = estimate(_cube_stats(), PrintProfile(layer_height_mm=0.1))

    assert fine.layer_count > coarse.layer_count
    assert fine.print_seconds > coarse.print_seconds


def test_more_infill_uses_more_filament() -> None:
    sparse = estimate(_cube_stats(), PrintProfile(infill_density=0.1))
    dense = estimate(_cube_stats(), PrintProfile(infill_density=0.6))

    assert dense.filament_mm3 > sparse.filament_mm3
    assert dense.print_seconds > sparse.print_seconds


def test_a_cube_twice_the_size_takes_more_material_and_time() -> None:
    small = estimate(_cube_stats(20), PrintProfile())
    large = estimate(_cube_stats(40), PrintProfile())

    # 8x the volume; walls and skins grow only 4x, so somewhat less than 8x the filament.
    assert 4 * small.filament_mm3 < large.filament_mm3 < 8 * small.filament_mm3
    assert large.print_seconds > 4 * small.print_seconds


def test_a_part_without_volume_estimates_nothing() -> None:
    flat = MeshStats(volume_mm3=0.0, area_up_mm2=100, area_down_mm2=100, area_side_mm2=0, size_mm=(10, 10, 0))

    result = estimate(flat, PrintProfile())

    assert (result.print_seconds, result.filament_mm3, result.layer_count) == (0.0, 0.0, 0)


def test_faces_are_classed_up_down_or_side_at_45_degrees() -> None:
    # A ramp: a wedge whose slope rises 40 degrees (normal z = cos 40 = 0.77: up) or 50 degrees (0.64: side).
    def ramp(degrees: float) -> MeshStats:
        run = 10.0
        triangle = CrossSection(
            [np.array([[0.0, 0.0], [run, 0.0], [0.0, run * np.tan(np.radians(degrees))]])]
        )
        # Extruded 10 along z, then the profile's y turned into z (x, y, z -> x, -z, y): a proper rotation.
        frame = np.array([[1, 0, 0, 0], [0, 0, -1, 10], [0, 1, 0, 0]], dtype=np.float64)
        solid = Manifold.extrude(triangle, 10.0).transform(frame).to_mesh()
        mesh = trimesh.Trimesh(vertices=solid.vert_properties[:, :3], faces=solid.tri_verts)
        return mesh_stats(mesh)

    slope_area = 10.0 * 10.0 / np.cos(np.radians(40))
    gentle, steep = ramp(40), ramp(50)

    assert gentle.area_up_mm2 == pytest.approx(slope_area)
    assert steep.area_up_mm2 == pytest.approx(0)
    assert gentle.area_down_mm2 == steep.area_down_mm2 == pytest.approx(100)


def test_an_inside_out_mesh_is_measured_as_its_repaired_self() -> None:
    mesh = _cube(20)
    mesh.invert()

    stats = mesh_stats(mesh)

    assert stats.volume_mm3 == pytest.approx(8000)
    assert stats.area_up_mm2 == pytest.approx(400)
    assert stats.area_side_mm2 == pytest.approx(1600)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(28, "28s"), (1072, "17m 52s"), (3600, "1h 0m 0s"), (96_099, "1d 2h 41m 39s"), (0.2, "1s")],
)
def test_durations_are_written_as_prusaslicer_writes_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert gcode.parse_duration(text) == max(1, round(seconds))


async def test_the_adapter_writes_a_preview_gcode_that_the_parser_reads(tmp_path: Path) -> None:
    slicer = BuiltinEstimator()
    job = _job(tmp_path, _write_stl(tmp_path, _cube(20)))

    result = await slicer.slice(job)

    expected = estimate(_cube_stats(), job.profile)
    assert result.print_seconds == pytest.approx(expected.print_seconds)
    assert result.filament_mm3 == pytest.approx(expected.filament_mm3)
    assert result.slicer == slicer.name == "estimator"
    assert result.slicer_version == await slicer.version()
    assert result.gcode_path.parent == job.workdir
    text = result.gcode_path.read_text()
    assert text.startswith("; SPAREFLOW ESTIMATOR PREVIEW: NOT FOR PRODUCTION PRINTERS")
    assert gcode.count_marker_lines(result.gcode_path, b";LAYER_CHANGE") == result.layer_count == 100
    footer = gcode.parse_prusaslicer_footer(
        gcode.read_tail(result.gcode_path, gcode.PRUSASLICER_FOOTER_BYTES)
    )
    assert footer.print_seconds == round(result.print_seconds)
    assert footer.filament_cm3 == pytest.approx(result.filament_mm3 / 1000, abs=0.01)
    assert footer.filament_g == pytest.approx(result.filament_g, abs=0.01)


async def test_the_preview_outlines_the_part_centred_on_the_bed(tmp_path: Path) -> None:
    result = await BuiltinEstimator().slice(_job(tmp_path, _write_stl(tmp_path, _cube(20))))

    moves = re.findall(r"^G[01] X([\d.]+) Y([\d.]+)", result.gcode_path.read_text(), re.MULTILINE)
    points = np.array(moves, dtype=np.float64)

    assert points.min(axis=0) == pytest.approx([115, 95])
    assert points.max(axis=0) == pytest.approx([135, 115])


async def test_a_huge_preview_draws_every_nth_layer_but_marks_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(estimator, "MAX_PREVIEW_SEGMENTS", 50)

    result = await BuiltinEstimator().slice(_job(tmp_path, _write_stl(tmp_path, _cube(20))))

    text = result.gcode_path.read_text()
    assert "outline drawn on every" in text
    assert gcode.count_marker_lines(result.gcode_path, b";LAYER_CHANGE") == result.layer_count
    assert text.count("\nG1 X") <= 2 * 50


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(bytes(80) + (0).to_bytes(4, "little"), id="zero-faces"),
        pytest.param(b"not a mesh, just bytes\n" * 40, id="garbage"),
        pytest.param(b"", id="empty-file"),
    ],
)
async def test_an_unreadable_model_raises(tmp_path: Path, content: bytes) -> None:
    model = tmp_path / "broken.stl"
    model.write_bytes(content)

    with pytest.raises(SlicerError):
        await BuiltinEstimator().slice(_job(tmp_path, model))


async def test_a_flat_model_raises_empty_output(tmp_path: Path) -> None:
    flat = trimesh.Trimesh(vertices=[[0, 0, 0], [10, 0, 0], [0, 10, 0]], faces=[[0, 1, 2]])

    with pytest.raises(EmptySliceOutput):
        await BuiltinEstimator().slice(_job(tmp_path, _write_stl(tmp_path, flat)))


async def test_a_tiny_timeout_raises_slicer_timeout(tmp_path: Path) -> None:
    model = _write_stl(tmp_path, trimesh.creation.icosphere(subdivisions=5, radius=20))

    with pytest.raises(SlicerTimeout):
        await BuiltinEstimator().slice(_job(tmp_path, model, timeout_s=0.001))


async def test_a_model_too_large_for_the_memory_limit_is_refused(tmp_path: Path) -> None:
    job = _job(tmp_path, _write_stl(tmp_path, _cube(20)))
    job = SliceJob(
        model_path=job.model_path,
        profile=job.profile,
        build_volume=job.build_volume,
        workdir=job.workdir,
        memory_limit_bytes=1000,  # 12 faces need ~7 KB by the estimator's own bound
    )

    with pytest.raises(SlicerError, match="memory limit"):
        await BuiltinEstimator().slice(job)
