"""ruff, mypy --strict and import-linter over the three packages and the tests: the types and the layers are
part of the contract."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

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


# Its own test, expected to fail until the cycles it reports are gone; every other contract must hold.
CYCLE_CONTRACT = "services-acyclic"


def _import_contracts() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return [str(contract["id"]) for contract in config["tool"]["importlinter"]["contracts"]]


def test_import_contracts_hold() -> None:
    # The layering contracts in pyproject's [tool.importlinter]: parts_catalog and slicer_adapters import
    # neither services nor FastAPI, Starlette or arq, directly or through a module of ours.
    contracts = [c for c in _import_contracts() if c != CYCLE_CONTRACT]
    assert contracts, "no import-linter contracts found in pyproject.toml"
    result = _run(
        "lint-imports", "--no-cache", "--no-logo", *(a for c in contracts for a in ("--contract", c))
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _first_import(graph: grimp.ImportGraph, importer: str, imported: str) -> str:
    """One line of ``importer`` (a package) that imports from ``imported``, as ``module:line``."""
    for module in sorted({importer} | graph.find_descendants(importer)):
        for target in sorted(graph.find_modules_directly_imported_by(module)):
            if target == imported or target.startswith(f"{imported}."):
                line = graph.get_import_details(importer=module, imported=target)[0]["line_number"]
                return f"{module}:{line} imports {target}"
    return f"{importer} imports {imported}"


def _package_cycles(ancestor: str) -> list[str]:
    """Each pair of ``ancestor``'s children that import each other, with one import each way; then each
    child in a longer cycle only, with the shortest such cycle."""
    graph = grimp.build_graph(ancestor, cache_dir=None)
    children = sorted(graph.find_children(ancestor))
    edges = {
        (a, b)
        for a in children
        for b in children
        if a != b and graph.direct_import_exists(importer=a, imported=b, as_packages=True)
    }

    def short(name: str) -> str:
        return name.removeprefix(f"{ancestor}.")

    found, paired = [], set()
    for a, b in sorted(edges):
        if a < b and (b, a) in edges:
            paired |= {a, b}
            found.append(
                f"{short(a)} <-> {short(b)}: {_first_import(graph, a, b)}; {_first_import(graph, b, a)}"
            )
    for child in children:
        if child not in paired and (cycle := _shortest_cycle(child, edges)):
            found.append(" -> ".join(short(c) for c in cycle))
    return found


def _shortest_cycle(start: str, edges: set[tuple[str, str]]) -> list[str] | None:
    paths = [[start]]
    while paths:
        path = paths.pop(0)
        for a, b in sorted(edges):
            if a == path[-1] and b == start:
                return [*path, start]
            if a == path[-1] and b not in path:
                paths.append([*path, b])
    return None


def test_the_packages_of_services_import_each_other_without_cycles() -> None:
    result = _run("lint-imports", "--no-cache", "--no-logo", "--contract", CYCLE_CONTRACT)
    cycles = "\n".join(_package_cycles("services")) if result.returncode else ""
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\nCycles:\n{cycles}"


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
