"""Every table of the platform, imported in one place so that SQLModel's metadata is complete."""

from parts_catalog.models import Part, PartEquipment, PartRevision
from services.accounts.models import ApiKey, Organization, Partner
from services.couriers.providers.local.table import LocalParcel
from services.factories.models import Printer, Site
from services.idempotency.models import IdempotencyRecord
from services.orders.models import Order, OrderEvent
from services.printing.models import PrintJob, SliceArtifact
from services.routing.models import PrinterReservation
from services.shipping.models import Shipment, ShipmentEvent
from services.webhooks.inbound.models import InboundWebhook, PartnerSecret
from services.webhooks.outbound.models import WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiKey",
    "IdempotencyRecord",
    "InboundWebhook",
    "LocalParcel",
    "Order",
    "OrderEvent",
    "Organization",
    "Part",
    "PartEquipment",
    "PartRevision",
    "Partner",
    "PartnerSecret",
    "PrintJob",
    "Printer",
    "PrinterReservation",
    "Shipment",
    "ShipmentEvent",
    "Site",
    "SliceArtifact",
    "WebhookDelivery",
    "WebhookEndpoint",
]
