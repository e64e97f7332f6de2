"""The built-in estimator, no binary needed: ``model`` (print time and filament from geometry facts, pure
arithmetic) and ``adapter`` (the ``Slicer`` that measures an STL, applies the model, writes a preview)."""

from slicer_adapters.estimator.adapter import BuiltinEstimator

__all__ = ["BuiltinEstimator"]
