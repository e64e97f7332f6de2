"""Request and response bodies of the webhook endpoint API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.orders.events import EventType
from services.validation import MULTILINE_PATTERN
from services.webhooks.outbound.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from services.webhooks.outbound.ssrf import MAX_URL_LENGTH


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_LENGTH, strip_whitespace=True)] = (
        Field(description="http(s) URL on a public address; it receives a POST per event")
    )
    description: Annotated[str, StringConstraints(max_length=500, pattern=MULTILINE_PATTERN)] = ""
    event_types: list[EventType] = Field(
        default_factory=list, max_length=len(EventType), description="Event types to receive; empty: all"
    )
    organization_id: uuid.UUID | None = Field(
        default=None, description="Operators: whose endpoint this is (required). Technicians: their own."
    )


class EndpointOut(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    consecutive_failures: int
    previous_secret_expires_at: datetime | None = Field(
        description="After a rotation, until when the old secret signs alongside the new one"
    )
    created_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> EndpointOut:
        return cls.model_validate(endpoint, from_attributes=True)


class EndpointWithSecretOut(EndpointOut):
    secret: str = Field(
        description="The signing secret (`whsec_...`), shown in this response only: store it now"
    )

    @classmethod
    def revealing(cls, endpoint: WebhookEndpoint) -> EndpointWithSecretOut:
        return cls.model_validate(endpoint, from_attributes=True)


class AttemptOut(BaseModel):
    n: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    order_id: uuid.UUID
    event_type: str
    msg_id: str = Field(description="The `webhook-id` header: the same on every attempt")
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    attempt_log: list[AttemptOut]
    payload: dict[str, Any]
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> DeliveryOut:
        return cls.model_validate(delivery, from_attributes=True)
