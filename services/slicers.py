"""The slicers this deployment offers, built from settings (the libraries never read the environment)."""

from __future__ import annotations

from services.config import Settings
from slicer_adapters.curaengine.adapter import CuraEngineCli
from slicer_adapters.estimator.adapter import BuiltinEstimator
from slicer_adapters.prusaslicer.adapter import PrusaSlicerCli
from slicer_adapters.registry import SlicerRegistry


def build_slicer_registry(settings: Settings) -> SlicerRegistry:
    """PrusaSlicer first, then CuraEngine, then the built-in estimator, which always works."""
    return SlicerRegistry(
        [
            PrusaSlicerCli(
                binary=settings.prusaslicer_binary, cache_dir=settings.slicer_cache_dir / "prusaslicer"
            ),
            CuraEngineCli(
                binary=settings.curaengine_binary, resources_dir=settings.resolved_cura_resources_dir
            ),
            BuiltinEstimator(),
        ]
    )
