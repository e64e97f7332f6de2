"""Every table of the platform, imported in one place so that SQLModel's metadata is complete."""

from parts_catalog.models import Part, PartEquipment, PartRevision
from services.accounts.models import ApiKey, Organization, Partner
from services.factories.models import Site
from services.printing.models import PrintJob, SliceArtifact

__all__ = [
    "ApiKey",
    "Organization",
    "Part",
    "PartEquipment",
    "PartRevision",
    "Partner",
    "PrintJob",
    "Site",
    "SliceArtifact",
]
