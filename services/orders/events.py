"""Which order events are published to customers' webhook endpoints, and the wake-up job that publishes
them (``services.webhooks.outbound`` registers it with the worker): the orders' own vocabulary, so that
placing an order needs nothing of the publisher."""

from __future__ import annotations

from enum import StrEnum

# The publisher's job (workers.jobs.outbound_webhooks), woken after an event of a published kind commits.
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
