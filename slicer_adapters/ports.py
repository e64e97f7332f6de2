"""The Slicer port: every slicer (a CLI binary or the built-in estimator) looks like this to the platform."""

from __future__ import annotations

from typing import Protocol

from slicer_adapters.models import SliceJob, SliceResult


class Slicer(Protocol):
    """Turns a model and a print profile into G-code and estimates."""

    @property
    def name(self) -> str:
        """Stable identifier, e.g. ``prusaslicer``; part of the slice cache key."""
        ...

    async def version(self) -> str | None:
        """The slicer's version string, or None when it cannot run here (binary or data missing)."""
        ...

    async def slice(self, job: SliceJob) -> SliceResult:
        """Slice ``job.model_path`` for ``job.profile`` on a bed of ``job.build_volume``.

        Runs in ``job.workdir`` within ``job.timeout_s`` and ``job.memory_limit_bytes``.

        Returns:
            A result whose G-code file exists and is non-empty, with print time and filament > 0.
        Raises:
            SlicerError subclasses (see ``slicer_adapters.errors``); never returns an empty result.
        """
        ...
