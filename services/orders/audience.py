"""What each audience sees of an order's events.

An order event's ``data`` is the operators' record of what happened: the old assignment of a moved order,
the lease fence a site printed under, the notes a site wrote, a courier's or a slicer's error text. Two
audiences read events:

- **operators** (an admin key, with no organization scope): everything, as stored;
- **customers** (a technician's organization, through ``GET /orders/{id}/events``, ``/timeline`` and the
  outbound ``order.*`` webhooks): only the fields ``CUSTOMER_FIELDS`` lists for the event's kind.

An allowlist, not a list of secrets: a field someone adds to an event later stays with operators until it
is listed here, so internal details cannot reach customers by default. Lease entries of the timeline
(``job_claimed``, ``lease_*``) list nothing: which agent held the job under which fence is the site's
business, and a lease's end reason is free text the site wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

_PROMISE = frozenset({"site", "promised_delivery_at", "on_time"})
_PARCEL = frozenset({"courier", "tracking_number"})

# Per event kind, the data keys customers see; a nested mapping filters a nested object the same way.
CUSTOMER_FIELDS: Mapping[str, Mapping[str, Any]] = {
    "routed": dict.fromkeys(_PROMISE, True),
    "rerouted": {
        **dict.fromkeys(_PROMISE, True),
        "previous": {"site_id": True, "promised_delivery_at": True},
    },
    "at_risk": {"eta": True, "promised_delivery_at": True},
    "printed": {"part_weight_g": True},
    "shipment_booked": dict.fromkeys(
        _PARCEL | {"service", "pickup_from", "pickup_until", "estimated_delivery_at"}, True
    ),
    "shipped": dict.fromkeys(_PARCEL | {"picked_up_at"}, True),
    "delivered": dict.fromkeys(_PARCEL | {"delivered_at"}, True),
    "needs_attention": dict.fromkeys(_PARCEL | {"code"}, True),
    "attention_cleared": dict.fromkeys(_PARCEL, True),
    "failed": {"cause": True},
    "cancelled": {"note": True},  # the customer's own words
}


class Audience(StrEnum):
    OPERATOR = "operator"
    CUSTOMER = "customer"

    @classmethod
    def scoped_to(cls, organization_id: object | None) -> Audience:
        """A reader scoped to an organization is that organization's customer; unscoped is an operator."""
        return cls.OPERATOR if organization_id is None else cls.CUSTOMER


def visible_data(kind: str, data: Mapping[str, Any] | None, audience: Audience) -> dict[str, Any]:
    """The part of an event's ``data`` that ``audience`` may see."""
    if audience is Audience.OPERATOR:
        return dict(data or {})
    return _keep(data or {}, CUSTOMER_FIELDS.get(kind, {}))


def _keep(data: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, rule in fields.items():
        if key not in data:
            continue
        value = data[key]
        if isinstance(rule, Mapping):
            kept[key] = _keep(value, rule) if isinstance(value, Mapping) else None
        else:
            kept[key] = value
    return kept
