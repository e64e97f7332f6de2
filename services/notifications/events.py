"""Which order events customers receive, what their webhook body looks like, and the publisher's job name.

Kept free of services imports beyond the order tables and what customers see of them
(``services.orders.audience``): ``services.orders.service`` imports this module.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from services.orders.audience import Audience, visible_data
from services.orders.models import Order, OrderEvent

# The publisher's job (workers.jobs.notifications), woken after an event of a published kind commits.
PUBLISH_ORDER_EVENTS = "publish_order_events"


class EventType(StrEnum):
    """``order.<event kind>``: the order events published to customers' endpoints."""

    ROUTED = "order.routed"
    PRINTING = "order.printing"
    PRINTED = "order.printed"
    SHIPPED = "order.shipped"
    DELIVERED = "order.delivered"
    AT_RISK = "order.at_risk"
    REROUTED = "order.rerouted"
    FAILED = "order.failed"
    CANCELLED = "order.cancelled"
    NEEDS_ATTENTION = "order.needs_attention"


# Order event kinds that are published (received, preparing, ready_for_print and the like are internal).
PUBLISHED_KINDS = frozenset(t.value.removeprefix("order.") for t in EventType)


def event_type_of(kind: str) -> EventType | None:
    return EventType(f"order.{kind}") if kind in PUBLISHED_KINDS else None


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
