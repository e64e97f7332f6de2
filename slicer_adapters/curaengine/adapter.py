"""The Slicer port over the CuraEngine 4.13 command line (``CuraEngine slice``).

CuraEngine needs Cura's machine definitions (``definitions/`` and ``extruders/`` of Cura's resources, shipped
in Debian's ``cura`` package, not in ``cura-engine``). We slice with the generic ``fdmprinter`` definition and
give every setting the profile decides as a leaf (see ``settings``). Estimates come from stderr with ``-v``:
the ``;TIME`` header in the G-code is a placeholder. CuraEngine never checks that the part fits the bed (a
1.5 m part runs for minutes and writes hundreds of MB): the platform checks bed fit before slicing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path

from slicer_adapters import gcode
from slicer_adapters._process import ProcessOutput, probe_version, raise_for_exit, run_process
from slicer_adapters.curaengine.settings import settings_argv
from slicer_adapters.errors import (
    EmptySliceOutput,
    OperationNotSupported,
    SlicerFailed,
    SlicerUnavailable,
)
from slicer_adapters.models import SliceJob, SliceResult

# CuraEngine 4.13 loads STL only, and recognises exactly these two spellings of the extension.
SUPPORTED_SUFFIXES = frozenset({".stl", ".STL"})
# The generic FFF printer every Cura machine inherits from; its extruder is fdmextruder.def.json.
BASE_DEFINITION = "fdmprinter.def.json"
EXTRUDER_DEFINITION = "fdmextruder.def.json"
_VERSION = re.compile(r"Cura_SteamEngine version (\S+)")


class CuraEngineCli:
    """Slices with the ``CuraEngine`` binary.

    Args:
        binary: the executable's name (looked up on PATH) or path.
        resources_dir: Cura's ``resources`` directory, holding ``definitions/`` and ``extruders/``; None
            (or a directory without the base definitions) makes the adapter unavailable.
    """

    def __init__(self, binary: str = "CuraEngine", resources_dir: Path | None = None) -> None:
        self._binary = binary
        self._resources_dir = resources_dir
        self._executable: str | None = None
        self._version: str | None = None

    @property
    def name(self) -> str:
        return "curaengine"

    def _search_path(self) -> list[Path] | None:
        """Where CuraEngine looks for inherited definitions, if the base printer and extruder are there."""
        if self._resources_dir is None:
            return None
        directories = [self._resources_dir / "definitions", self._resources_dir / "extruders"]
        has_printer = (directories[0] / BASE_DEFINITION).is_file()
        has_extruder = any((directory / EXTRUDER_DEFINITION).is_file() for directory in directories)
        return directories if has_printer and has_extruder else None

    async def version(self) -> str | None:
        """CuraEngine's version (e.g. ``4.13.0``), cached once found; None if the binary or definitions are
        missing."""
        if self._version is not None:
            return self._version
        if await asyncio.to_thread(self._search_path) is None:
            return None
        found = await probe_version(self._binary, ["help"], _VERSION)
        if found is not None:
            self._executable, self._version = found
        return self._version

    async def slice(self, job: SliceJob) -> SliceResult:
        """Slice the STL at ``job.model_path``, centred on the bed; see ``Slicer.slice``.

        Raises:
            SlicerUnavailable: CuraEngine or Cura's definitions are missing.
            OperationNotSupported: the model is not an STL file.
            SlicerTimeout, SlicerResourceExhausted, SlicerFailed (EmptySliceOutput): see ``errors``.
        """
        # Absolute paths: the child runs in the workdir, and the result's G-code path must not depend on cwd.
        job = dataclasses.replace(job, model_path=job.model_path.resolve(), workdir=job.workdir.resolve())
        version = await self.version()
        executable = self._executable
        search_path = await asyncio.to_thread(self._search_path)
        if version is None or executable is None or search_path is None:
            raise SlicerUnavailable(f"{self._binary} or Cura's definitions are missing")
        if job.model_path.suffix not in SUPPORTED_SUFFIXES:
            raise OperationNotSupported(f"CuraEngine reads STL only, not {job.model_path.suffix!r}")

        output = job.workdir / "model.gcode"
        argv = [
            executable,
            "slice",
            "-v",  # the estimates are printed only in verbose mode
            "-j",
            str(search_path[0] / BASE_DEFINITION),
            *settings_argv(job.profile, job.build_volume),
            "-l",
            str(job.model_path),
            "-o",
            str(output),
        ]
        result = await run_process(
            argv,
            cwd=job.workdir,
            timeout_s=job.timeout_s,
            memory_limit_bytes=job.memory_limit_bytes,
            env={
                "CURA_ENGINE_SEARCH_PATH": ":".join(str(directory) for directory in search_path),
                # Our own complete environment: nothing of the worker's (secrets included) reaches the child.
                "HOME": str(job.workdir),
                "TMPDIR": str(job.workdir),
                "LC_ALL": "C.UTF-8",
            },
            keep_line=gcode.is_cura_estimate_line,
        )
        raise_for_exit(result, program="CuraEngine")
        return await asyncio.to_thread(self._read_result, job, output, version, result)

    def _read_result(self, job: SliceJob, output: Path, version: str, result: ProcessOutput) -> SliceResult:
        estimates = gcode.parse_cura_estimates(result.kept_lines)
        if estimates.print_seconds is None or estimates.filament_mm3 is None:
            raise EmptySliceOutput("CuraEngine printed no estimates", output=result.output)
        # Exit 0 with zero filament is how CuraEngine reports a model it could not slice (all layers empty).
        if estimates.filament_mm3 <= 0 or estimates.print_seconds <= 0:
            raise EmptySliceOutput("CuraEngine extruded nothing (every layer is empty)", output=result.output)
        if not output.is_file() or output.stat().st_size == 0:
            raise EmptySliceOutput("CuraEngine wrote no G-code", output=result.output)
        header = gcode.read_head(output, gcode.CURA_HEADER_BYTES)
        layers = gcode.parse_cura_layer_count(header) or gcode.count_marker_lines(output, b";LAYER:")
        if layers == 0:
            raise SlicerFailed("the G-code has no layers", output=result.output)
        return SliceResult(
            gcode_path=output,
            print_seconds=estimates.print_seconds,
            filament_mm3=estimates.filament_mm3,
            filament_g=estimates.filament_mm3 * job.profile.filament_density_g_cm3 / 1000,
            layer_count=layers,
            slicer=self.name,
            slicer_version=version,
        )
