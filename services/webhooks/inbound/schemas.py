"""Inbound webhooks as operators see them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.webhooks.inbound.models import InboundStatus


class InboundWebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    source: str = Field(description="The partner's slug")
    event_id: str
    event_type: str
    status: InboundStatus
    attempts: int = Field(description="Attempts at applying it since it was received or last retried")
    last_error: str | None = Field(description="Why the last attempt failed")
    outcome: str | None
    received_at: datetime
    processed_at: datetime | None
    payload: dict[str, Any] = Field(description="The body as the partner sent it")
