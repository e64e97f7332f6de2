"""Every table of the platform, imported in one place so that SQLModel's metadata is complete."""

from parts_catalog.models import Part, PartEquipment, PartRevision
from services.accounts.models import ApiKey, Organization, Partner
from services.factories.models import Printer, Site
from services.idempotency.models import IdempotencyRecord
from services.orders.models import Order, OrderEvent, PrinterReservation
from services.printing.models import PrintJob, SliceArtifact

__all__ = [
    "ApiKey",
    "IdempotencyRecord",
    "Order",
    "OrderEvent",
    "Organization",
    "Part",
    "PartEquipment",
    "PartRevision",
    "Partner",
    "PrintJob",
    "Printer",
    "PrinterReservation",
    "Site",
    "SliceArtifact",
]
