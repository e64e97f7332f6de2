"""The built-in estimator, no binary needed: ``model`` (print time and filament from geometry facts, pure
arithmetic, which the API's routing uses) and ``adapter`` (the ``Slicer`` that measures an STL, applies the
model, writes a preview). Nothing is imported here: the API process must not load the adapter's mesh code."""
