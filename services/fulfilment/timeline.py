"""An order's timeline: routing, printing and shipping, merged in the order things happened."""

from __future__ import annotations

import uuid
from typing import Any

from services.fulfilment.repository import FactoryJobRepository
from services.orders.audience import Audience, visible_data
from services.orders.models import OrderEvent
from services.printing.models import LeaseOutcome
from services.shipping.schemas import Source, TimelineEntry, TimelineOut
from services.shipping.service import ShippingService

_PRINTING = frozenset({"printing", "printed"})
_SHIPPING = frozenset({"shipment_booked", "shipped", "delivered", "needs_attention", "attention_cleared"})
# How a claim of the print job ended, told without the lease's fence and the reason the site wrote.
_LEASE_END_FOR_CUSTOMERS = {
    LeaseOutcome.COMPLETED: "printing finished",
    LeaseOutcome.FAILED: "printing failed at the site",
    LeaseOutcome.EXPIRED: "printing interrupted: the site stopped reporting",
    LeaseOutcome.CANCELLED: "printing withdrawn",
}


def _summary(event: OrderEvent, data: dict[str, Any]) -> str:
    match event.kind:
        case "routed" | "rerouted":
            promised = data.get("promised_delivery_at")
            where = f"to {data.get('site')}/{data.get('printer')}, delivery promised {promised}"
            return f"{event.kind} {where}" + (f" ({event.reason})" if event.reason else "")
        case "printed":
            weight = data.get("part_weight_g")
            return "printed" + (f", {weight:.1f} g" if isinstance(weight, int | float) else "")
        case "shipment_booked":
            tracking = data.get("tracking_number")
            return f"booked with {data.get('courier')} ({data.get('service')}), tracking {tracking}"
        case "shipped":
            return f"picked up by {data.get('courier')}, tracking {data.get('tracking_number')}"
        case "needs_attention":
            return f"needs attention: {event.reason}"
        case "attention_cleared":
            return f"attention cleared ({event.reason})"
        case _:
            return event.kind.replace("_", " ") + (f" ({event.reason})" if event.reason else "")


def _source(kind: str) -> Source:
    return "printing" if kind in _PRINTING else "shipping" if kind in _SHIPPING else "routing"


class Timelines:
    def __init__(self, shipping: ShippingService) -> None:
        self.shipping = shipping
        self.orders = shipping.orders

    async def of(self, order_id: uuid.UUID, *, visible_to: uuid.UUID | None) -> TimelineOut:
        order = await self.orders.get(order_id, visible_to=visible_to)
        audience = Audience.scoped_to(visible_to)
        events = list(await self.orders.repo.events(order_id))
        entries = []
        for e in events:
            data = visible_data(e.kind, e.data, audience)
            entries.append(
                TimelineEntry(
                    at=e.at,
                    source=_source(e.kind),
                    kind=e.kind,
                    status=e.to_status.value
                    if e.to_status is not None and e.to_status != e.from_status
                    else None,
                    summary=_summary(e, data),
                    data=data,
                )
            )
        # Every print job the order had (a re-route gives it a new one), and each claim of each.
        jobs = {uuid.UUID(e.data["print_job_id"]) for e in events if (e.data or {}).get("print_job_id")}
        factory = FactoryJobRepository(self.orders.session)
        for job_id in sorted(jobs):
            for lease in await factory.leases_of(job_id):
                record = {"print_job_id": str(job_id), "fence": lease.fence, "claimed_by": lease.claimed_by}
                operator = audience is Audience.OPERATOR
                entries.append(
                    TimelineEntry(
                        at=lease.claimed_at,
                        source="printing",
                        kind="job_claimed",
                        status=None,
                        summary="print job claimed by the site's agent"
                        + (f" (lease {lease.fence})" if operator else ""),
                        data=visible_data("job_claimed", record, audience),
                    )
                )
                if lease.ended_at is not None and lease.outcome is not None:
                    kind = f"lease_{lease.outcome.value}"
                    entries.append(
                        TimelineEntry(
                            at=lease.ended_at,
                            source="printing",
                            kind=kind,
                            status=None,
                            summary=f"lease {lease.fence} {lease.outcome.value}"
                            + (f": {lease.reason}" if lease.reason else "")
                            if operator
                            else _LEASE_END_FOR_CUSTOMERS[lease.outcome],
                            data=visible_data(kind, record, audience),
                        )
                    )
        shipment = await self.shipping.repo.current(order_id)
        shipment_out = None
        if shipment is not None:
            shipment_out = await self.shipping.describe(shipment)
            entries += [
                TimelineEntry(
                    at=t.occurred_at,
                    source="shipping",
                    kind=f"tracking_{t.status.value}",
                    status=t.status.value,
                    summary=" - ".join(part for part in (t.description, t.location) if part)
                    or t.status.value,
                    data={"courier": shipment.courier, "tracking_number": shipment.tracking_number},
                )
                for t in shipment_out.events
            ]
        entries.sort(key=lambda entry: entry.at)  # stable: same-instant entries keep their source order
        return TimelineOut(
            order_id=order.id,
            status=order.status,
            needs_attention=order.needs_attention,
            promised_delivery_at=order.promised_delivery_at,
            eta=order.eta,
            delivered_at=shipment.delivered_at if shipment is not None else None,
            shipment=shipment_out,
            entries=entries,
        )
