"""Loops over many rows (the SLA watchdog, the factory sweep, the re-optimiser, the outbound publisher, a
site's re-route): one item that fails never aborts the rest.

Each item's step runs inside ``ItemFailures.item``; a step that raises is logged with the item's id, counted
in ``spareflow_job_item_failures_total{job}`` and recorded, and the loop goes on with the next item. A step
that changes rows opens its own transaction inside the block, so a failure rolls back that item alone.
Containing is not bounding: a loop whose item would fail again on every run turns its recorded failures into
a bound of its own (an event that cannot be rendered is marked failed, an order that cannot be re-routed is
flagged for an operator after ``max_job_attempts``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from services.observability.metrics import JOB_ITEM_FAILURES

log = logging.getLogger(__name__)
K = TypeVar("K")


class ItemFailures(Generic[K]):
    """The items of one run of ``job`` whose step failed, with their errors."""

    def __init__(self, job: str) -> None:
        self.job = job
        self.errors: dict[K, str] = {}
        # The series exists at 0 from the first run: alerts on its rate need it before the first failure.
        JOB_ITEM_FAILURES.labels(job)

    @contextmanager
    def item(self, item_id: K) -> Iterator[None]:
        """Run one item's step; a failure (any ``Exception``: the step may hit a bug as well as an outage)
        is logged, counted and recorded instead of raised. Cancellation passes through."""
        try:
            yield
        except Exception as exc:
            self.errors[item_id] = f"{type(exc).__name__}: {exc}"[:500]
            JOB_ITEM_FAILURES.labels(self.job).inc()
            log.exception("%s: %s failed; going on with the others", self.job, item_id)
