"""Prometheus metrics, in the text exposition format: this process's counters, then the platform's state."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Gauge, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from parts_catalog.sqltypes import utcnow
from services.api.deps import Resources
from services.api.state_gauges import read_state, render
from services.db import CONNECTION_ERRORS

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)
# What the error handlers answer 503 for, plus any other database error: a scrape must not fail for it.
_DATABASE_DOWN: tuple[type[Exception], ...] = (SQLAlchemyError, *CONNECTION_ERRORS)


@router.get("/metrics", response_class=Response, include_in_schema=False)
async def metrics(resources: Resources) -> Response:
    try:
        state = render(
            await read_state(resources.sessions, resources.queue, resources.settings.queue_name, utcnow())
        )
        up = 1
    except _DATABASE_DOWN as exc:
        # The process's own series still say something useful while the database is away.
        log.warning("platform state unavailable for /metrics: %s", exc)
        state, up = CollectorRegistry(), 0
    Gauge("spareflow_state_up", "Whether this scrape could read the database", registry=state).set(up)
    return Response(generate_latest(REGISTRY) + generate_latest(state), media_type=CONTENT_TYPE_LATEST)
