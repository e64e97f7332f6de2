"""What an order event's webhook body looks like: its id, its JSON, its exact bytes. Which events are
published is the orders' to say (``services.orders.events``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from services.orders.audience import Audience, visible_data
from services.orders.events import EventType
from services.orders.models import Order, OrderEvent


def msg_id_of(event_id: int) -> str:
    """The ``webhook-id``: one per event, the same on every attempt and endpoint, so receivers dedupe."""
    return f"evt_{event_id}"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def payload_of(event: OrderEvent, order: Order, event_type: EventType) -> dict[str, Any]:
    """The body's JSON value; ``status`` is the order's status after the event."""
    status = event.to_status or order.status
    return {
        "type": event_type.value,
        "timestamp": _iso(event.at),
        "data": {
            "order_id": str(order.id),
            "organization_id": str(order.organization_id),
            "status": status.value,
            "event": {
                "at": _iso(event.at),
                "kind": event.kind,
                "from_status": event.from_status.value if event.from_status else None,
                "to_status": event.to_status.value if event.to_status else None,
                "reason": event.reason,
                "data": visible_data(event.kind, event.data, Audience.CUSTOMER),
            },
        },
    }


def body_of(payload: dict[str, Any]) -> bytes:
    """Compact JSON, UTF-8: the exact bytes that are signed and sent."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
