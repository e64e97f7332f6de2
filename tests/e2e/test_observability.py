"""What operators see: readiness, Prometheus metrics read from the database and the queue, and JSON logs
that carry the request's and the order's ids (API) or the job's (worker)."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from parts_catalog.sqltypes import utcnow
from services.config import Settings
from services.observability.logs import JsonFormatter
from tests.builders import HAMBURG, app_client, bearer, make_shop, order_body, place_order
from tests.workers import run_worker_until_idle


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Every record, formatted as production formats it (inside the request or job that logged it)."""
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def entries(lines: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines.getvalue().splitlines()]


async def test_ready_when_the_database_and_redis_answer(client: httpx.AsyncClient) -> None:
    answer = await client.get("/ready")

    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
    assert (await client.get("/health")).json() == {"status": "ok"}


@pytest.mark.parametrize("migrated_url", ["postgresql"], indirect=True)
async def test_not_ready_names_the_dependency_that_does_not_answer(settings: Settings) -> None:
    # Nothing listens on port 1: the database is down while the process and Redis are fine.
    down = settings.model_copy(update={"database_url": "postgresql+asyncpg://postgres@127.0.0.1:1/spareflow"})
    async with app_client(down) as client:
        answer = await client.get("/ready")
        alive = await client.get("/health")

    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["code"] == "not_ready"
    assert error["details"]["checks"]["redis"] == "ok"
    assert error["details"]["checks"]["database"] != "ok"
    # Alive all the same: restarting the process would not bring the database back.
    assert alive.status_code == 200


async def test_metrics_report_orders_jobs_and_queue_from_the_database(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    shop = await make_shop(client, settings, {"hamburg": HAMBURG})
    before = await scrape(client)
    on_time = await place_order(client, shop["tech"], order_body("BR-1"))
    # Only an hour to go, accepted late: routed, and at risk from the start.
    need_by = (utcnow() + timedelta(hours=1)).isoformat()
    late = await place_order(
        client, shop["tech"], order_body("BR-1", sla=None, need_by=need_by, accept_late=True)
    )
    refused = await place_order(client, shop["tech"], order_body("BR-1", sla=None, need_by=need_by))
    assert (on_time.status_code, late.status_code, refused.status_code) == (201, 201, 422)

    queued = await scrape(client)
    assert value(queued, "spareflow_orders", status="routed") == 2
    assert value(queued, "spareflow_orders", status="delivered") == 0
    assert value(queued, "spareflow_orders_sla_at_risk") == 1
    assert value(queued, "spareflow_print_jobs", status="waiting_geometry") == 2
    assert value(queued, "spareflow_print_job_oldest_age_seconds", status="waiting_geometry") >= 0
    # Both orders' preparation waits for a worker (none runs yet).
    assert value(queued, "spareflow_queue_jobs", state="ready") == 2
    assert value(queued, "spareflow_queue_oldest_ready_age_seconds") > 0
    routed = ("spareflow_routing_seconds_count", "routed")
    assert value(queued, routed[0], outcome=routed[1]) - value(before, routed[0], outcome=routed[1]) == 2
    unachievable = value(queued, "spareflow_routing_seconds_count", outcome="sla_unachievable")
    assert unachievable - value(before, "spareflow_routing_seconds_count", outcome="sla_unachievable") == 1
    assert value(queued, "spareflow_state_up") == 1

    await run_worker_until_idle(settings)
    prepared = await scrape(client)
    assert value(prepared, "spareflow_print_jobs", status="ready") == 2
    assert value(prepared, "spareflow_print_jobs", status="waiting_geometry") == 0
    assert value(prepared, "spareflow_queue_jobs", state="ready") == 0
    assert value(prepared, "spareflow_orders", status="ready_for_print") == 2
    # The process's request counter saw this very scrape's predecessors, by route template.
    assert value(prepared, "spareflow_http_requests_total", method="POST", route="/orders", status="201") >= 2


@pytest.mark.parametrize("migrated_url", ["postgresql"], indirect=True)
async def test_logs_carry_request_order_and_job_ids(
    client: httpx.AsyncClient, settings: Settings, json_log: io.StringIO
) -> None:
    shop = await make_shop(client, settings, {"hamburg": HAMBURG})
    placed = await client.post(
        "/orders",
        json=order_body("BR-1"),
        headers={**bearer(shop["tech"]), "Idempotency-Key": str(uuid.uuid4()), "X-Request-ID": "trace-42"},
    )
    order_id = placed.json()["id"]
    fetched = await client.get(
        f"/orders/{order_id}", headers={**bearer(shop["tech"]), "X-Request-ID": "not a valid id!"}
    )
    await run_worker_until_idle(settings)

    assert placed.headers["X-Request-ID"] == "trace-42"
    assert fetched.headers["X-Request-ID"] != "not a valid id!"  # replaced, not echoed
    logged = entries(json_log)
    access = [e for e in logged if e["logger"] == "services.api.access"]
    post = next(e for e in access if e["method"] == "POST" and e["route"] == "/orders")
    assert post["request_id"] == "trace-42"
    assert post["order_id"] == order_id  # bound by the order service while it placed the order
    assert (post["status"], post["level"]) == (201, "info")
    assert post["duration_ms"] > 0
    get = next(e for e in access if e["method"] == "GET" and e["route"] == "/orders/{order_id}")
    assert get["request_id"] == fetched.headers["X-Request-ID"]
    assert get["order_id"] == order_id  # from the path
    # arq's own lines about each job run inside the job's context.
    # arq's "→ job(...)" and "← job ●" lines.
    jobs = [e for e in logged if e["logger"] == "arq.worker" and ("→" in e["message"] or "←" in e["message"])]
    started = [e for e in jobs if "→ prepare_print" in e["message"]]
    assert len(started) == 1
    assert started[0]["queue_job_id"] == f"prepare_print:{placed.json()['print_job_id']}"
    assert all("queue_job_id" in e and e["job_try"] == "1" for e in jobs)
