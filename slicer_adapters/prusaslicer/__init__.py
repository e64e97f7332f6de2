"""PrusaSlicer 2.5 over its command line: ``config`` (pure profile mapping) and ``adapter`` (the process)."""

from slicer_adapters.prusaslicer.adapter import PrusaSlicerCli

__all__ = ["PrusaSlicerCli"]
