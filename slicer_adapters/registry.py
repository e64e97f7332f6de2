"""Which slicers this process can run, and which one a printer gets."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from slicer_adapters.errors import SlicerUnavailable
from slicer_adapters.ports import Slicer


@dataclass(frozen=True, slots=True)
class ResolvedSlicer:
    slicer: Slicer
    version: str


class SlicerRegistry:
    """Slicers in order of preference; ``auto`` takes the first one that can run here."""

    def __init__(self, slicers: Sequence[Slicer]) -> None:
        self._slicers = {s.name: s for s in slicers}
        self._order = [s.name for s in slicers]
        self._versions: dict[str, str | None] = {}
        self._lock = asyncio.Lock()

    @property
    def names(self) -> list[str]:
        return list(self._order)

    async def version_of(self, name: str) -> str | None:
        async with self._lock:
            if name not in self._versions:
                self._versions[name] = await self._slicers[name].version()
            return self._versions[name]

    async def available(self) -> dict[str, str]:
        """Name -> version of every slicer that can run here."""
        found = {name: await self.version_of(name) for name in self._order}
        return {name: version for name, version in found.items() if version}

    async def resolve(self, choice: str) -> ResolvedSlicer:
        """The slicer for a printer's choice (a name, or ``auto``).

        Raises:
            SlicerUnavailable: the named slicer is unknown or cannot run here, or none can.
        """
        names = self._order if choice == "auto" else [choice]
        for name in names:
            if name in self._slicers and (version := await self.version_of(name)):
                return ResolvedSlicer(self._slicers[name], version)
        raise SlicerUnavailable(f"no usable slicer for {choice!r} (known: {', '.join(self._order)})")
