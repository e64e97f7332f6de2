"""Facts about geometry results that readers need without loading any mesh code."""

from parts_catalog.formats import ModelFormat
from parts_catalog.units import Unit

# The report's version: bumped whenever its fields change meaning, so readers can tell.
REPORT_VERSION = 1
# A repaired model is always stored as a binary STL in millimetres, whatever the upload was.
REPAIRED_FORMAT = ModelFormat.STL_BINARY
REPAIRED_UNIT = Unit.MILLIMETER
# Part of the slice cache key of a print job: bump whenever a change in ``parts_catalog.orientation`` can
# change a chosen orientation. Here so that routing can compute cache keys without importing mesh code.
ORIENTATION_VERSION = 1
