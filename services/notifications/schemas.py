"""Request and response bodies of the webhook endpoint API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.notifications.events import EventType
from services.notifications.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from services.notifications.ssrf import MAX_URL_LENGTH

_PRINTABLE = r"^[^\x00-\x08\x0b-\x1f\x7f]*$"


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_LENGTH, strip_whitespace=True)] = (
        Field(description="http(s) URL on a public address; it receives a POST per event")
    )
    description: Annotated[str, StringConstraints(max_length=500, pattern=_PRINTABLE)] = ""
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
        return cls(
            id=endpoint.id,
            organization_id=endpoint.organization_id,
            url=endpoint.url,
            description=endpoint.description,
            event_types=endpoint.event_types,
            enabled=endpoint.enabled,
            disabled_at=endpoint.disabled_at,
            disabled_reason=endpoint.disabled_reason,
            consecutive_failures=endpoint.consecutive_failures,
            previous_secret_expires_at=endpoint.previous_secret_expires_at,
            created_at=endpoint.created_at,
        )


class EndpointWithSecretOut(EndpointOut):
    secret: str = Field(
        description="The signing secret (`whsec_...`), shown in this response only: store it now"
    )

    @classmethod
    def revealing(cls, endpoint: WebhookEndpoint) -> EndpointWithSecretOut:
        return cls(**EndpointOut.of(endpoint).model_dump(), secret=endpoint.secret)


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
        return cls(
            id=delivery.id,
            endpoint_id=delivery.endpoint_id,
            order_id=delivery.order_id,
            event_type=delivery.event_type,
            msg_id=delivery.msg_id,
            status=delivery.status,
            attempts=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at,
            last_attempt_at=delivery.last_attempt_at,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            attempt_log=[AttemptOut.model_validate(a) for a in delivery.attempt_log],
            payload=delivery.payload,
            created_at=delivery.created_at,
            delivered_at=delivery.delivered_at,
        )


class DeliveryPageOut(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end")
