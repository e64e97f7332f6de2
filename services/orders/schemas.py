"""What a technician sends to order a part, and what an order looks like from outside."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from parts_catalog.schemas import Material
from services.addresses import Address, Line
from services.orders.audience import Audience, visible_data
from services.orders.models import Order, OrderEvent
from services.orders.states import OrderStatus
from services.routing.schemas import RoutingOut
from services.validation import MULTILINE_PATTERN, UtcDatetime

# Shape only (whether a mailbox exists is the courier's business), and no control characters: \s does not
# cover C1 or most of C0.
_EMAIL = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f]+\.[^@\s\x00-\x1f\x7f-\x9f]+$"
# Orders are for urgent spare parts: more than this many copies is a production run, not an order.
MAX_QUANTITY = 50


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Line
    phone: Annotated[str, StringConstraints(max_length=40, pattern=r"^\+?[0-9 ()/-]*$")] = ""
    email: Annotated[str, StringConstraints(max_length=254, pattern=_EMAIL)] | None = None


class Destination(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latitude: float = Field(strict=True, ge=-90, le=90)
    longitude: float = Field(strict=True, ge=-180, le=180)
    address: Address
    contact: Contact


def _exactly_one(*fields: str) -> dict[str, Any]:
    """A JSON Schema for "exactly one of ``fields`` is given (and not null)"."""
    return {
        "oneOf": [
            {
                "required": [given],
                "properties": {
                    field: {"not": {"type": "null"}} if field == given else {"type": "null"}
                    for field in fields
                },
            }
            for given in fields
        ]
    }


class OrderIn(BaseModel):
    """Exactly one of ``part_number`` (its newest ready revision) and ``revision_id``; exactly one of ``sla``
    and ``need_by``."""

    # The schema states what ``_one_of_each`` checks, so clients (and the API fuzzer) can see it.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "allOf": [_exactly_one("part_number", "revision_id"), _exactly_one("sla", "need_by")]
        },
    )

    part_number: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    revision_id: uuid.UUID | None = None
    quantity: int = Field(default=1, strict=True, ge=1, le=MAX_QUANTITY)
    material: Material | None = Field(
        default=None, description="One of the part's materials; by default any of them"
    )
    destination: Destination
    sla: Literal["24h", "48h"] | None = None
    need_by: UtcDatetime | None = Field(default=None, description="With a time zone, e.g. 2026-11-22T09:00Z")
    accept_late: bool = Field(
        default=False,
        strict=True,
        description="When no site can deliver in time, take the earliest delivery instead of an error",
    )

    @model_validator(mode="after")
    def _one_of_each(self) -> OrderIn:
        if (self.part_number is None) == (self.revision_id is None):
            raise ValueError("give exactly one of part_number and revision_id")
        if (self.sla is None) == (self.need_by is None):
            raise ValueError("give exactly one of sla and need_by")
        return self


class OrderOut(BaseModel):
    id: uuid.UUID
    status: OrderStatus
    organization_id: uuid.UUID
    part_id: uuid.UUID
    revision_id: uuid.UUID
    quantity: int
    materials: list[str]
    destination: Destination
    sla: str | None
    need_by: datetime
    accept_late: bool
    promised_delivery_at: datetime | None
    eta: datetime | None
    print_job_id: uuid.UUID | None
    routing: RoutingOut | None
    reroutes: int
    failure_code: str | None
    needs_attention: str | None = Field(
        description="Set while an operator must act: why (e.g. `delivery_failed`, `courier_rejected`)"
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, order: Order) -> OrderOut:
        return cls(
            id=order.id,
            status=order.status,
            organization_id=order.organization_id,
            part_id=order.part_id,
            revision_id=order.revision_id,
            quantity=order.quantity,
            materials=order.materials,
            destination=Destination(
                latitude=order.destination_lat,
                longitude=order.destination_lon,
                address=Address.model_validate(order.address),
                contact=Contact.model_validate(order.contact),
            ),
            sla=order.sla,
            need_by=order.need_by,
            accept_late=order.accept_late,
            promised_delivery_at=order.promised_delivery_at,
            eta=order.eta,
            print_job_id=order.print_job_id,
            routing=RoutingOut.model_validate(order.routing) if order.routing else None,
            reroutes=order.reroutes,
            failure_code=order.failure_code,
            needs_attention=order.needs_attention,
            created_at=order.created_at,
            updated_at=order.updated_at,
        )


class OrderEventOut(BaseModel):
    at: datetime
    kind: str
    from_status: OrderStatus | None
    to_status: OrderStatus | None
    reason: str | None
    data: dict[str, Any] = Field(
        description="Operators see the full record; an organization's technicians see the fields meant "
        "for customers (the promise, the parcel, the measured weight), never a site's internal report"
    )

    @classmethod
    def seen_by(cls, event: OrderEvent, audience: Audience) -> OrderEventOut:
        return cls(
            at=event.at,
            kind=event.kind,
            from_status=event.from_status,
            to_status=event.to_status,
            reason=event.reason,
            data=visible_data(event.kind, event.data, audience),
        )


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(max_length=500, pattern=MULTILINE_PATTERN)] = ""
