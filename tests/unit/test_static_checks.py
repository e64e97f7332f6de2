"""ruff and mypy --strict over the three packages and the tests: the types are part of the contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_lint() -> None:
    result = _run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = _run("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


BANNED_IN_LIBRARIES = {"services", "fastapi", "starlette", "arq"}


def test_libraries_do_not_import_the_platform() -> None:
    offenders = []
    for package in ("parts_catalog", "slicer_adapters"):
        for path in (ROOT / package).rglob("*.py"):
            for line in path.read_text().splitlines():
                words = line.split()
                is_import = len(words) > 1 and words[0] in {"import", "from"}
                if is_import and words[1].split(".")[0] in BANNED_IN_LIBRARIES:
                    offenders.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert offenders == []


def test_the_api_process_does_not_import_mesh_code() -> None:
    # Heavy geometry belongs to workers; the API imports none of it (memory, start-up, event loop). numpy
    # and scipy's k-d tree are the API's by design: routing's spatial index answers in the request.
    mesh = "{'trimesh', 'manifold3d', 'lib3mf', 'stl', 'scipy.optimize'}"
    probe = f"import sys, services.api.app; print(sorted({mesh} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
