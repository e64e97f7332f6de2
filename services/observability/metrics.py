"""The Prometheus series each process counts as things happen (``/metrics``).

These are per process: every API replica and worker exports its own, and Prometheus sums them. What the
database and the queue hold (orders by status, jobs by state and age) is read at scrape time instead
(``services.api.state_gauges``), because no single process sees all of it.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

WEBHOOK_REJECTIONS = Counter(
    "spareflow_webhook_rejections",
    "Inbound webhooks refused before anything was stored (failed verification and the like), by source "
    "and reason",
    ["source", "reason"],
)
ROUTING_SECONDS = Histogram(
    "spareflow_routing_seconds",
    "Time to route an order (choose, lock and reserve a printer), by outcome",
    ["outcome"],
    # Routing takes milliseconds; contended rows and a snapshot reload take longer.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
LEASE_EXPIRIES = Counter(
    "spareflow_lease_expiries",
    "Print job leases that ran out before their factory completed or failed the job",
)
COURIER_ERRORS = Counter(
    "spareflow_courier_errors",
    "Courier calls that failed, by courier, operation and error code",
    ["courier", "operation", "code"],
)
HTTP_REQUESTS = Counter(
    "spareflow_http_requests",
    "API requests answered, by method, route template and status code",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "spareflow_http_request_seconds",
    "API request time until the response started, by method and route template",
    ["method", "route"],
)
JOB_ITEM_FAILURES = Counter(
    "spareflow_job_item_failures",
    "Items (an order, a site, a lease, an event) whose step failed in a loop over many rows, by job; the "
    "loop went on with the others",
    ["job"],
)
