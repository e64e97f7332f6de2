"""`spareflow check`: the geometry check on local files, as an operator runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import trimesh

from parts_catalog.formats import ArchiveLimits, detect_model_format
from parts_catalog.geometry import MeshLimits, check_model

SPAREFLOW = str(Path(sys.executable).parent / "spareflow")


def check(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SPAREFLOW, "check", *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def write_stl(path: Path, mesh: trimesh.Trimesh) -> Path:
    mesh.export(path, file_type="stl")
    return path


def test_repairs_an_open_model_and_writes_the_result(tmp_path: Path) -> None:
    box = trimesh.creation.box(extents=(30, 20, 10))
    lidless = trimesh.Trimesh(box.vertices, box.faces[box.face_normals[:, 2] < 0.5], process=False)
    source = write_stl(tmp_path / "lidless.stl", lidless)
    out = tmp_path / "fixed.stl"

    result = check(source, "--repair", out, "--json")

    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)["files"]
    assert entry["printable"] is True
    assert entry["report"]["verdict"] == "repairable"
    assert entry["repaired_to"] == str(out)
    fixed = check_model(out, detect_model_format(out, archive_limits=LIMITS).format, limits=MeshLimits())
    assert fixed.verdict == "ok"
    assert fixed.facts is not None
    assert abs(fixed.facts.volume_mm3 - 6000) < 60


LIMITS = ArchiveLimits(max_uncompressed_bytes=10**9, max_compression_ratio=100, max_entries=1000)


def test_units_and_exit_codes(tmp_path: Path) -> None:
    metres = write_stl(tmp_path / "in-metres.stl", trimesh.creation.box(extents=(0.04, 0.03, 0.02)))
    refused = check(metres)
    assert refused.returncode == 1
    assert "units_suspect" in refused.stdout
    accepted = check(metres, "--units", "meter")
    assert accepted.returncode == 0, accepted.stdout
    assert "printable: yes" in accepted.stdout


def test_several_files_one_bad(tmp_path: Path) -> None:
    good = write_stl(tmp_path / "good.stl", trimesh.creation.box(extents=(10, 10, 10)))
    junk = tmp_path / "junk.stl"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    result = check(good, junk, "--json")
    assert result.returncode == 1
    files = {Path(f["path"]).name: f for f in json.loads(result.stdout)["files"]}
    assert files["good.stl"]["printable"] is True
    assert files["junk.stl"]["report"]["reasons"] == ["unsupported_format"]
