"""Re-routes that fail: an order that must leave its site (the site went offline) but whose re-route raises.

``workers.jobs.orders.reroute_site`` moves each order in a transaction of its own and contains a failure to
that order (``services.loops``). Each failure is then recorded here, in a transaction of its own, as a
``reroute_failed`` event on the order's timeline with the error (operators only). After ``max_attempts``
failures in a row the order is flagged ``needs_attention`` (``reroute_failed``) and stays where it is: the
reconciler no longer wakes its site for it (``OrderRepository.sites_with_stranded_orders``), so a re-route
that fails every time ends instead of running every minute for ever. Flagged, not failed: the cause is ours
(a bug, a row we cannot read), and an operator who fixes it moves the order with ``POST
/orders/{id}/reroute``, which clears the flag; failing it would cancel a customer's order for our error.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from parts_catalog.sqltypes import utcnow
from services.orders.repository import REROUTE_FAILED
from services.orders.service import OrderService
from services.orders.states import UNSTARTED


async def record_reroute_failure(
    orders: OrderService, order_id: uuid.UUID, *, error: str, max_attempts: int, now: datetime | None = None
) -> bool:
    """Note a failed re-route; flag the order once ``max_attempts`` have failed in a row.

    Returns:
        Whether the order is now flagged for an operator.
    """
    now = now or utcnow()
    order = await orders.repo.order(order_id, for_update=True)
    if order is None or order.status not in UNSTARTED:
        return False
    failed = await orders.repo.reroute_failures(order_id) + 1
    orders.note(order, REROUTE_FAILED, at=now, data={"attempt": failed, "error": error})
    if failed >= max_attempts:
        data = {"code": REROUTE_FAILED, "attempts": failed, "error": error}
        orders.flag(order, REROUTE_FAILED, at=now, data=data)
    await orders.session.flush()
    return failed >= max_attempts
