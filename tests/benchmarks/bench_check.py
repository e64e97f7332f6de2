"""Benchmark parts_catalog.geometry: check throughput and the cost of one large part.

Run from the project root:  .venv/bin/python tests/benchmarks/bench_check.py

Prints, next to the goals:
* throughput over the shared corpus (../shared/corpus; skipped when absent): load, analyse, both;
* throughput on generated parts (a 1M-facet torus, a 1.3M-facet icosphere) written as binary STL;
* wall time and peak RSS of loading + checking the 1M-facet part in a fresh process (the child's VmHWM, next
  to a child that only imports the modules).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trimesh

from parts_catalog.formats import ArchiveLimits, ModelFileError, ModelFormat, detect_model_format
from parts_catalog.geometry import GeometryRejected, MeshLimits, analyse, check_model, load_model

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
ARCHIVE_LIMITS = ArchiveLimits(
    max_uncompressed_bytes=1000 * 1024 * 1024, max_compression_ratio=100.0, max_entries=1000
)
LIMITS = MeshLimits()

GOAL_FACES_PER_SECOND = 1_000_000  # check stage (analyse)
GOAL_SECONDS = 3.0  # a 1M-facet part loaded and checked
GOAL_PEAK_RSS_MB = 1024.0


def _timed_load_and_analyse(path: Path, fmt: ModelFormat) -> tuple[int, float, float]:
    started = time.perf_counter()
    loaded = load_model(path, fmt, limits=LIMITS)
    loaded_at = time.perf_counter()
    facts = analyse(loaded.mesh)
    return facts.faces, loaded_at - started, time.perf_counter() - loaded_at


def _rate(faces: int, seconds: float) -> str:
    return f"{faces / seconds / 1e6:6.2f} M faces/s" if seconds > 0 else "n/a"


def bench_corpus() -> None:
    if not (CORPUS / "meshes").is_dir():
        print(f"corpus: skipped, not found at {CORPUS}")
        return
    rows: list[tuple[str, int, float, float]] = []
    for path in sorted((CORPUS / "meshes").iterdir()):
        try:
            fmt = detect_model_format(path, archive_limits=ARCHIVE_LIMITS).format
            rows.append((path.name, *_timed_load_and_analyse(path, fmt)))
        except (ModelFileError, GeometryRejected):
            continue  # refused before a mesh exists: nothing to measure
    faces = sum(row[1] for row in rows)
    load = sum(row[2] for row in rows)
    check = sum(row[3] for row in rows)
    print(f"corpus: {len(rows)} loadable files, {faces:,} faces")
    print(f"  load    {load:7.3f} s  {_rate(faces, load)}")
    goal = f"goal >= {GOAL_FACES_PER_SECOND / 1e6:.0f} M faces/s"
    print(f"  analyse {check:7.3f} s  {_rate(faces, check)}   {goal}")
    print(f"  both    {load + check:7.3f} s  {_rate(faces, load + check)}")
    print("  slowest (load + analyse):")
    for name, count, load_s, check_s in sorted(rows, key=lambda row: -(row[2] + row[3]))[:5]:
        print(
            f"    {name:48} {count:8,} faces  {load_s + check_s:6.3f} s  ({_rate(count, load_s + check_s)})"
        )


def _write_generated(directory: Path) -> dict[str, Path]:
    parts = {
        "torus 1.0M": trimesh.creation.torus(
            major_radius=40.0, minor_radius=10.0, major_sections=1000, minor_sections=500
        ),
        "icosphere 1.3M": trimesh.creation.icosphere(subdivisions=8, radius=50.0),
    }
    paths = {}
    for name, mesh in parts.items():
        paths[name] = directory / f"{name.split()[0]}.stl"
        mesh.export(paths[name])
    return paths


def bench_generated(paths: dict[str, Path]) -> None:
    print("generated parts (binary STL, this process):")
    for name, path in paths.items():
        faces, load_s, check_s = _timed_load_and_analyse(path, ModelFormat.STL_BINARY)
        print(
            f"  {name:15} load {load_s:6.3f} s  analyse {check_s:6.3f} s ({_rate(faces, check_s)})"
            f"  both {load_s + check_s:6.3f} s ({_rate(faces, load_s + check_s)})"
        )


def bench_fresh_process(path: Path) -> None:
    baseline = _child("--child-imports")
    started = time.perf_counter()
    result = _child("--child-check", str(path))
    process_seconds = time.perf_counter() - started
    print(f"1M-facet part in a fresh process ({result['faces']:,} faces, verdict {result['verdict']}):")
    print(f"  load + check   {result['seconds']:6.3f} s      goal <= {GOAL_SECONDS:.0f} s")
    print(f"  whole process  {process_seconds:6.3f} s      (imports included: keep workers warm)")
    print(f"  peak RSS       {result['peak_mb']:6.0f} MB     goal <= {GOAL_PEAK_RSS_MB:.0f} MB")
    print(f"  of which the imports alone {baseline['peak_mb']:4.0f} MB")


def _child(*args: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True, timeout=600
    )
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not getrusage: Linux carries ru_maxrss across exec, so a child
    forked from this benchmark, already holding the generated meshes, would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _child_main(args: list[str]) -> None:
    if args[0] == "--child-imports":
        print(json.dumps({"peak_mb": _peak_rss_mb()}))
        return
    started = time.perf_counter()
    report = check_model(Path(args[1]), ModelFormat.STL_BINARY, limits=LIMITS)
    seconds = time.perf_counter() - started
    faces = report.facts.faces if report.facts else 0
    print(
        json.dumps(
            {"seconds": seconds, "faces": faces, "verdict": report.verdict.value, "peak_mb": _peak_rss_mb()}
        )
    )


def main() -> None:
    bench_corpus()
    with tempfile.TemporaryDirectory() as directory:
        paths = _write_generated(Path(directory))
        bench_generated(paths)
        bench_fresh_process(paths["torus 1.0M"])


if __name__ == "__main__":
    if len(sys.argv) > 1:
        _child_main(sys.argv[1:])
    else:
        main()
