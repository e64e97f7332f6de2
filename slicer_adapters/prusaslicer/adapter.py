"""The Slicer port over the PrusaSlicer 2.5 command line.

One slice is one process: the profile's full config (all ~260 keys, expanded once by PrusaSlicer itself) is
cached under ``cache_dir`` by the digest of its short config and the slicer version. Estimates come from the
G-code footer. With ``--center`` PrusaSlicer does not arrange, so it does not check that the part fits the bed
(without it, it would abort on a part too large); the platform checks bed fit before slicing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import math
import os
import re
import tempfile
from pathlib import Path

from slicer_adapters import gcode
from slicer_adapters._process import ProcessOutput, probe_version, raise_for_exit, run_process
from slicer_adapters.errors import (
    EmptySliceOutput,
    OperationNotSupported,
    SlicerFailed,
    SlicerTimeout,
    SlicerUnavailable,
)
from slicer_adapters.models import SliceJob, SliceResult
from slicer_adapters.prusaslicer.config import bed_centre, prusaslicer_config, render_ini

# What PrusaSlicer 2.5 loads as models; 3MF and OBJ units come from the file.
SUPPORTED_SUFFIXES = frozenset({".stl", ".obj", ".3mf"})
_VERSION = re.compile(r"PrusaSlicer-(\S+)")
# PrusaSlicer aborts (SIGABRT) with this when it cannot place the part. With --center it does not arrange, and
# the message follows "its_convex_hull: Unable to create convex hull": measured for a flat (zero-thickness)
# mesh, and also for a 327,680-face sphere under a 150 MiB memory limit. The output cannot tell the two apart:
# it is classified permanent (a flat mesh never slices), so that memory failure is reported as permanent too.
_DOES_NOT_FIT = "Objects could not fit on the bed"


class PrusaSlicerCli:
    """Slices with the ``prusa-slicer`` binary.

    Args:
        binary: the executable's name (looked up on PATH) or path.
        cache_dir: where expanded full configs are kept between slices; None expands one in every workdir
            (one extra process per slice).
    """

    def __init__(self, binary: str = "prusa-slicer", cache_dir: Path | None = None) -> None:
        self._binary = binary
        self._cache_dir = cache_dir
        self._executable: str | None = None
        self._version: str | None = None

    @property
    def name(self) -> str:
        return "prusaslicer"

    async def version(self) -> str | None:
        """PrusaSlicer's version (e.g. ``2.5.0+UNKNOWN``), cached once found; None if it cannot run here."""
        if self._version is not None:
            return self._version
        found = await probe_version(self._binary, ["--help"], _VERSION)
        if found is not None:
            self._executable, self._version = found
        return self._version

    async def slice(self, job: SliceJob) -> SliceResult:
        """Slice ``job.model_path`` (STL, OBJ or 3MF) centred on the bed; see ``Slicer.slice``.

        Raises:
            SlicerUnavailable: prusa-slicer cannot run here.
            OperationNotSupported: the model is not a format PrusaSlicer reads.
            SlicerTimeout, SlicerResourceExhausted, SlicerFailed (EmptySliceOutput): see ``errors``.
        """
        deadline = asyncio.get_running_loop().time() + job.timeout_s
        # Absolute paths: the child runs in the workdir, and the result's G-code path must not depend on cwd.
        job = dataclasses.replace(job, model_path=job.model_path.resolve(), workdir=job.workdir.resolve())
        version = await self.version()
        executable = self._executable
        if version is None or executable is None:
            raise SlicerUnavailable(f"{self._binary} is not installed or does not run")
        if job.model_path.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise OperationNotSupported(f"PrusaSlicer cannot read {job.model_path.suffix!r} files")

        full_ini = await self._full_config(job, executable, version, deadline)
        output = job.workdir / "model.gcode"
        argv = [
            executable,
            "--loglevel",
            "1",  # errors only (the progress lines are printed whatever the level)
            "--export-gcode",
            "--load",
            str(full_ini),
            "--center",
            bed_centre(job.build_volume),
            str(job.model_path),
            "-o",
            str(output),
        ]
        result = await self._run(argv, job, deadline)
        raise_for_exit(result, program="prusa-slicer", permanent_markers=(_DOES_NOT_FIT,))
        return await asyncio.to_thread(self._read_result, job, output, version, result)

    async def _run(self, argv: list[str], job: SliceJob, deadline: float) -> ProcessOutput:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise SlicerTimeout(f"prusa-slicer not started: the {job.timeout_s:g} s timeout has passed")
        try:
            return await run_process(
                argv,
                cwd=job.workdir,
                timeout_s=remaining,
                memory_limit_bytes=job.memory_limit_bytes,
                env=_child_env(job.workdir),
            )
        except SlicerTimeout as exc:
            # Say which timeout: the process only had what the config expansion left of it.
            message = f"prusa-slicer killed: the job's {job.timeout_s:g} s timeout has passed"
            raise SlicerTimeout(message, output=exc.output) from exc

    async def _full_config(self, job: SliceJob, executable: str, version: str, deadline: float) -> Path:
        """The expanded config for the job's profile and bed, from the cache or made now (and cached)."""
        small = render_ini(prusaslicer_config(job.profile, job.build_volume))
        # The short config holds everything the profile and the bed decide; the version decides the rest.
        key = hashlib.sha256(f"{version}\n{small}".encode()).hexdigest()
        cached = self._cache_dir / f"{key}.ini" if self._cache_dir is not None else None
        if cached is not None and await asyncio.to_thread(cached.is_file):
            return cached

        small_ini, full_ini = job.workdir / "profile.ini", job.workdir / "full.ini"
        await asyncio.to_thread(small_ini.write_text, small)
        argv = [executable, "--loglevel", "1", "--load", str(small_ini), "--save", str(full_ini)]
        result = await self._run(argv, job, deadline)
        raise_for_exit(result, program="prusa-slicer")
        if not await asyncio.to_thread(full_ini.is_file):
            raise SlicerFailed("prusa-slicer did not save the expanded config", output=result.output)
        if cached is None:
            return full_ini
        await asyncio.to_thread(_atomic_copy, full_ini, cached)
        return cached

    def _read_result(self, job: SliceJob, output: Path, version: str, result: ProcessOutput) -> SliceResult:
        if not output.is_file() or output.stat().st_size == 0:
            raise EmptySliceOutput("prusa-slicer wrote no G-code", output=result.output)
        footer = gcode.parse_prusaslicer_footer(gcode.read_tail(output, gcode.PRUSASLICER_FOOTER_BYTES))
        if footer.filament_mm is not None:
            # The length has two decimals; the footer's cm3 only two decimals of a much smaller number.
            filament_mm3 = footer.filament_mm * math.pi * (job.profile.filament_diameter_mm / 2) ** 2
        elif footer.filament_cm3 is not None:
            filament_mm3 = footer.filament_cm3 * 1000
        else:
            raise EmptySliceOutput("the G-code has no filament estimate", output=result.output)
        if footer.print_seconds is None:
            raise EmptySliceOutput("the G-code has no print time estimate", output=result.output)
        if filament_mm3 <= 0 or footer.print_seconds <= 0:
            raise EmptySliceOutput("the G-code extrudes nothing (every layer is empty)", output=result.output)
        # ;Z: marks layer changes too, in G-code written without ;LAYER_CHANGE comments.
        layers = gcode.count_marker_lines(output, b";LAYER_CHANGE")
        layers = layers or gcode.count_marker_lines(output, b";Z:")
        if layers == 0:
            raise SlicerFailed("the G-code has no layer markers", output=result.output)
        return SliceResult(
            gcode_path=output,
            print_seconds=footer.print_seconds,
            filament_mm3=filament_mm3,
            # Computed, not the footer's [g]: that is the same number rounded to 0.01 g.
            filament_g=filament_mm3 * job.profile.filament_density_g_cm3 / 1000,
            layer_count=layers,
            slicer=self.name,
            slicer_version=version,
        )


def _child_env(workdir: Path) -> dict[str, str]:
    # A complete environment of our own: nothing of the worker's (secrets included) reaches the slicer, and
    # anything it would write under HOME or TMPDIR lands in the workdir. No DISPLAY: the CLI needs none.
    # A fixed locale, so output does not depend on the host; UTF-8 so that any file name can be opened.
    return {"HOME": str(workdir), "TMPDIR": str(workdir), "LC_ALL": "C.UTF-8"}


def _atomic_copy(source: Path, target: Path) -> None:
    # Readers never see a half-written config: the copy is renamed into place within the cache directory.
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(source.read_bytes())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
