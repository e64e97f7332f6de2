"""Shipments and order timelines as the API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.couriers.ports import TrackingStatus
from services.orders.states import OrderStatus
from services.shipping.models import Shipment, ShipmentEvent, ShipmentStatus


class TrackingEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    status: TrackingStatus
    occurred_at: datetime
    description: str
    location: str


class ShipmentOut(BaseModel):
    id: uuid.UUID
    order_id: uuid.UUID
    courier: str
    status: ShipmentStatus
    tracking_status: TrackingStatus
    tracking_number: str | None
    courier_shipment_id: str | None = Field(description="The courier's own id of the shipment")
    service: str | None
    label_available: bool
    parcel: dict[str, Any]
    pickup_from: datetime | None
    pickup_until: datetime | None
    estimated_delivery_at: datetime | None
    booked_at: datetime | None
    picked_up_at: datetime | None
    delivered_at: datetime | None
    attempts: int
    attention_reason: str | None
    last_error: str | None
    events: list[TrackingEventOut]

    @classmethod
    def of(cls, shipment: Shipment, events: list[ShipmentEvent]) -> ShipmentOut:
        return cls(
            id=shipment.id,
            order_id=shipment.order_id,
            courier=shipment.courier,
            status=shipment.status,
            tracking_status=shipment.tracking_status,
            tracking_number=shipment.tracking_number,
            courier_shipment_id=shipment.courier_shipment_id,
            service=shipment.service,
            label_available=shipment.label_pdf is not None,
            parcel=shipment.parcel,
            pickup_from=shipment.pickup_from,
            pickup_until=shipment.pickup_until,
            estimated_delivery_at=shipment.estimated_delivery_at,
            booked_at=shipment.booked_at,
            picked_up_at=shipment.picked_up_at,
            delivered_at=shipment.delivered_at,
            attempts=shipment.attempts,
            attention_reason=shipment.attention_reason,
            last_error=shipment.last_error,
            events=[TrackingEventOut.model_validate(e) for e in events],
        )


Source = Literal["routing", "printing", "shipping"]


class TimelineEntry(BaseModel):
    at: datetime
    source: Source
    kind: str
    status: str | None = Field(description="The order's status after a status change, or the parcel's")
    summary: str
    data: dict[str, Any]


class TimelineOut(BaseModel):
    order_id: uuid.UUID
    status: OrderStatus
    needs_attention: str | None
    promised_delivery_at: datetime | None
    eta: datetime | None = Field(
        description="When the part arrives as things stand (the courier's once shipped)"
    )
    delivered_at: datetime | None
    shipment: ShipmentOut | None
    entries: list[TimelineEntry] = Field(description="Oldest first")


class PartnerSecretIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        description="A secret the partner gave us (Karrio's subscription secret); by default we issue a "
        "`whsec_` secret for Standard Webhooks",
    )
    retire_others_after_hours: float | None = Field(
        default=None,
        strict=True,
        ge=0,
        le=24 * 30,
        description="Rotation: the partner's other secrets stop working then",
    )


class PartnerSecretOut(BaseModel):
    id: uuid.UUID
    partner_id: uuid.UUID
    created_at: datetime
    expires_at: datetime | None
    secret: str | None = Field(description="Only in the answer that created it")


class WebhookAck(BaseModel):
    accepted: bool
    duplicate: bool
