"""Every table of the platform, imported in one place so that SQLModel's metadata is complete."""

from parts_catalog.models import Part, PartEquipment, PartRevision
from services.accounts.models import ApiKey, Organization, Partner
from services.factories.models import Site

__all__ = ["ApiKey", "Organization", "Part", "PartEquipment", "PartRevision", "Partner", "Site"]
