"""Facts about geometry results that readers need without loading any mesh code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from parts_catalog.formats import ModelFormat
from parts_catalog.units import Unit

if TYPE_CHECKING:
    from parts_catalog.models import PartRevision

# The report's version: bumped whenever its fields change meaning, so readers can tell.
REPORT_VERSION = 1
# A repaired model is always stored as a binary STL in millimetres, whatever the upload was.
REPAIRED_FORMAT = ModelFormat.STL_BINARY
REPAIRED_UNIT = Unit.MILLIMETER
# Part of the slice cache key of a print job: bump whenever a change in ``parts_catalog.orientation`` can
# change a chosen orientation. Here so that routing can compute cache keys without importing mesh code.
ORIENTATION_VERSION = 1


class PartFacts(BaseModel):
    """The geometry report's facts that routing and shipping need (sizes in mm, face areas by direction), read
    from the revision's report; a ready revision has them."""

    model_config = ConfigDict(extra="ignore")

    volume_mm3: float = 0.0
    area_up_mm2: float = 0.0
    area_down_mm2: float = 0.0
    area_side_mm2: float = 0.0
    size: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @classmethod
    def of(cls, revision: PartRevision) -> PartFacts:
        return cls.model_validate((revision.geometry_report or {}).get("facts") or {})
