"""CuraEngine 4.13 over its command line: ``settings`` (pure profile mapping), ``adapter`` (the process)."""

from slicer_adapters.curaengine.adapter import CuraEngineCli

__all__ = ["CuraEngineCli"]
