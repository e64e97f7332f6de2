"""Liveness (``/health``: the process answers) and readiness (``/ready``: its database and Redis answer).

Both are public and cheap. A load balancer or Kubernetes sends traffic only to a ready replica, and
restarts one only when it stops being alive: a database outage makes every replica unready, not dead.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from services.api.deps import Resources
from services.api.schemas import ErrorResponse
from services.errors import Unavailable
from services.observability.readiness import readiness

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    # Each dependency: "ok", or why not.
    checks: dict[str, str]


@router.get("/health")
async def health() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    responses={503: {"model": ErrorResponse, "description": "The database or Redis does not answer"}},
)
async def ready(resources: Resources) -> Readiness:
    """200 when the database and Redis answer; else 503 `not_ready` with each check's state in details."""
    checks = await readiness(resources.engine, resources.queue)
    if any(state != "ok" for state in checks.values()):
        raise Unavailable("a dependency does not answer", code="not_ready", details={"checks": checks})
    return Readiness(status="ready", checks=checks)
