"""The one rule by which an order follows its print job.

preparing (the job's first preparation attempt), ready for print (the job is ready), printing (an agent
claimed it), printed (done; its courier is booked next); a lost print back to ready for print; a failed job
re-routes the order, or fails it when its model was rejected. Idempotent: an order already where its job
puts it does not move.

Everything that changes a job's status calls ``follow`` in the same transaction, after locking the order
and then the job (``services.fulfilment.unit_of_work``).
"""

from __future__ import annotations

from datetime import datetime

from parts_catalog.sqltypes import utcnow
from services.orders.service import OrderService
from services.orders.states import UNSTARTED, OrderStatus
from services.printing.models import LEASED, PrintJob, PrintJobStatus
from services.shipping.service import enqueue_shipping

S = OrderStatus
J = PrintJobStatus
# What an order's event keeps of the site's completion record (operators read it; customers see less,
# ``services.orders.audience``). The lease token's hash and the request's fingerprint stay on the job:
# only the job's own idempotency check needs them.
_COMPLETION_REPORT = ("fence", "part_weight_g", "qa_checks", "notes")


async def follow(
    orders: OrderService, job: PrintJob, *, now: datetime | None = None, reason: str | None = None
) -> None:
    """Move the job's order to where the job's status puts it (module docstring)."""
    now = now or utcnow()
    order = await orders.repo.order_of_job(job.id)
    if order is None or (order.status not in UNSTARTED and order.status is not S.PRINTING):
        return
    status = job.status
    if status is J.WAITING_GEOMETRY and job.attempts > 0:
        if order.status in (S.ROUTED, S.REROUTED):
            orders.move(order, S.PREPARING, at=now)
    elif status is J.READY:
        if order.status in (S.ROUTED, S.REROUTED, S.PREPARING):
            orders.move(order, S.READY_FOR_PRINT, at=now)
        elif order.status is S.PRINTING:
            orders.move(order, S.READY_FOR_PRINT, at=now, reason=reason or "print_lost")
    elif status in LEASED:
        if order.status in (S.READY_FOR_PRINT, S.AT_RISK):
            orders.move(order, S.PRINTING, at=now, data={"print_job_id": str(job.id), "fence": job.fence})
    elif status is J.DONE:
        if order.status is S.PRINTING:
            completion = job.completion or {}
            report = {key: completion.get(key) for key in _COMPLETION_REPORT}
            orders.move(order, S.PRINTED, at=now, data={"print_job_id": str(job.id), **report})
            enqueue_shipping(orders.session, order.id)
    elif status is J.FAILED:
        if job.failure_code == "revision_rejected":
            await orders.fail(order, job.failure_code, at=now, data={"message": job.failure_message})
        else:
            await orders.reroute(
                order.id, reason=f"print_job_failed:{job.failure_code}", now=now, print_lost=True
            )
    await orders.session.flush()
