"""The report stage: each order's timeline, the operator's metrics, and the run's summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from services.demo.preparation import PrintJobs
from services.demo.support import DemoFailed, Say, ok, when

# What the demo shows of /metrics: the series an operator watches first.
_SHOWN_METRICS = (
    "spareflow_orders",
    "spareflow_orders_sla_at_risk",
    "spareflow_routing_seconds_count",
    "spareflow_routing_seconds_sum",
    "spareflow_print_jobs",
    "spareflow_print_job_oldest_age_seconds",
    "spareflow_queue_jobs",
    "spareflow_queue_oldest_ready_age_seconds",
    "spareflow_lease_expiries_total",
    "spareflow_webhook_rejections_total",
    "spareflow_courier_errors_total",
)


async def timelines(tech: httpx.AsyncClient, orders: dict[str, Any], keys: list[str], say: Say) -> None:
    """Print the timeline of each of the keyed orders."""
    say("\nTimelines:")
    for key in keys:
        order_id = orders[key]["order_id"]
        timeline = ok(await tech.get(f"/orders/{order_id}/timeline"), 200)
        say(f"  {key} ({order_id}): {timeline['status']}")
        for entry in timeline["entries"]:
            say(f"    {when(entry['at'], '%H:%M:%S')}  {entry['source']:<8} {entry['summary']}")


async def scrape_metrics(client: httpx.AsyncClient, say: Say) -> dict[str, float]:
    """Scrape /metrics as Prometheus would; print (and return) the named series that have a value."""
    say("\nMetrics (GET /metrics, as Prometheus scrapes it; non-zero series):")
    answer = await client.get("/metrics")
    samples = [s for f in text_string_to_metric_families(answer.text) for s in f.samples]
    shown = {}
    for sample in samples:
        if sample.name in _SHOWN_METRICS and (sample.value or not sample.labels):
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            shown[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    for series, value in shown.items():
        say(f"  {series} {value:g}")
    missing = sorted(set(_SHOWN_METRICS) - {s.name for s in samples})
    if missing:
        raise DemoFailed(f"/metrics lacks {', '.join(missing)}")
    return shown


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the stages found, for the summary."""

    searches: dict[str, int]
    tenancy: tuple[int, int]  # parts another organization lists, status of its direct GET
    orders: dict[str, Any]
    printing: dict[str, Any]
    shipping: dict[str, Any]
    forged_webhook: str
    metrics: dict[str, float]
    revisions_by_status: Counter[str]
    print_jobs: PrintJobs


def _estimates(jobs: PrintJobs) -> dict[str, dict[str, float]]:
    return {
        number: {
            "print_minutes": round(job["slice"]["print_seconds"] / 60, 1),
            "filament_g": round(job["slice"]["filament_g"], 1),
        }
        for number, job in jobs
        if job["slice"]
    }


def summary(outcome: Outcome, timings: dict[str, float]) -> dict[str, Any]:
    """The run's summary: what ``spareflow demo --json`` prints."""
    jobs = outcome.print_jobs
    return {
        "parts": outcome.searches["all"],
        "revisions": outcome.revisions_by_status.total(),
        "revisions_by_status": dict(outcome.revisions_by_status),
        "searches": outcome.searches,
        "tenancy": {"other_org_sees": outcome.tenancy[0], "other_org_direct_get": outcome.tenancy[1]},
        "orders": outcome.orders,
        "printing": outcome.printing,
        "shipping": outcome.shipping,
        "forged_webhook": outcome.forged_webhook,
        "metrics": outcome.metrics,
        "print_jobs": dict(Counter(job["status"] for _, job in jobs)),
        "slicers": dict(Counter(job["slice"]["slicer"] for _, job in jobs if job["slice"])),
        "estimates": _estimates(jobs),
        "timings_ms": {k: round(v, 1) for k, v in timings.items()},
    }


def closing_line(outcome: Outcome, total_ms: float) -> str:
    statuses = outcome.revisions_by_status
    by_status = ", ".join(f"{count} {status}" for status, count in statuses.items())
    return (
        f"\n{outcome.searches['all']} parts, {statuses.total()} revisions ({by_status}) in "
        f"{total_ms / 1000:.1f} s"
    )
