"""Orders: technicians order parts for a place and a time; operators watch and steer."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.api.deps import Admin, OrderReader, Orders, Technician
from services.api.endpoints import error_responses
from services.api.idempotency import OPENAPI_PARAMETER as IDEMPOTENCY_KEY
from services.api.idempotency import IdempotentRequest
from services.orders.schemas import CancelIn, OrderEventOut, OrderIn, OrderOut
from services.orders.states import OrderStatus
from services.pages import Page

router = APIRouter(prefix="/orders", tags=["orders"])


@router.post(
    "",
    status_code=201,
    responses=error_responses(400, 404, 409, 422),
    openapi_extra={"parameters": [IDEMPOTENCY_KEY]},
)
async def place_order(
    body: OrderIn, principal: Technician, orders: Orders, idempotency: IdempotentRequest
) -> OrderOut:
    """Order a part: it is routed to the nearest capable microfactory that delivers in time, a printer slot
    is reserved, and the answer promises a delivery time with its breakdown (queue wait, printing,
    post-processing, wait for the courier's cut-off, transit) and the best alternatives with why they lost.

    When no site can deliver by the SLA (`24h`/`48h` from now) or `need_by`: 422 `sla_unachievable`, with
    the earliest possible delivery and where in `details.earliest`; send `accept_late: true` to take it.
    When no site can make the part at all: 422 `no_capable_site`.

    Requires the `Idempotency-Key` header (see its description): retrying with the same key never
    orders twice."""
    assert principal.organization_id is not None  # a technician key always belongs to one
    order = await orders.place(principal.organization_id, body, created_by=principal.key_id)
    answer = OrderOut.of(order)
    await idempotency.answer(201, answer)
    return answer


@router.get("", responses=error_responses(422))
async def list_orders(
    principal: OrderReader,
    orders: Orders,
    status: OrderStatus | None = None,
    cursor: Annotated[uuid.UUID | None, Query(description="`next_cursor` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[OrderOut]:
    """Orders, newest first: a technician's organization's, or all for operators."""
    found, next_cursor = await orders.page(
        visible_to=principal.catalog_scope, status=status, cursor=cursor, limit=limit
    )
    return Page[OrderOut](
        items=[OrderOut.of(o) for o in found], next_cursor=str(next_cursor) if next_cursor else None
    )


@router.get("/{order_id}", responses=error_responses(404, 422))
async def get_order(order_id: uuid.UUID, principal: OrderReader, orders: Orders) -> OrderOut:
    return OrderOut.of(await orders.get(order_id, visible_to=principal.catalog_scope))


@router.get("/{order_id}/events", responses=error_responses(404, 422))
async def order_events(order_id: uuid.UUID, principal: OrderReader, orders: Orders) -> list[OrderEventOut]:
    """Everything that happened to the order, oldest first: each status change with its reason."""
    return await orders.events(order_id, visible_to=principal.catalog_scope)


@router.post("/{order_id}/cancel", responses=error_responses(400, 404, 409, 422))
async def cancel_order(
    order_id: uuid.UUID, body: CancelIn, principal: OrderReader, orders: Orders
) -> OrderOut:
    """Cancel an order that has not started printing; its printer slot is given back. 409
    `invalid_order_transition` once printing has started."""
    return OrderOut.of(await orders.cancel(order_id, visible_to=principal.catalog_scope, reason=body.reason))


@router.post("/{order_id}/reroute", responses=error_responses(404, 409, 422))
async def reroute_order(order_id: uuid.UUID, _: Admin, orders: Orders) -> OrderOut:
    """Operators: move an order that has not started printing away from its site, to the best other site
    (late if nothing else can); the order fails if no other site can make it at all."""
    return OrderOut.of(await orders.reroute_by_operator(order_id))
