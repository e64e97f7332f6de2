"""The API as production builds it, plus ``POST /bench/insert``: the baseline of ``bench_orders_load.py``.

Run by that benchmark as ``uvicorn --factory tests.benchmarks.orders_load_app:create_bench_app`` with
``SPAREFLOW_*`` settings in the environment. ``/bench/insert`` authenticates like ``POST /orders`` (a
technician key, the same request transaction) and then inserts one row into ``bench_insert``, which the
benchmark creates: the cost of a request that does the least useful work on the same stack. Imports no mesh
code, like the real API process.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Body, FastAPI
from pydantic import BaseModel

from services.api.app import create_app
from services.api.deps import DbSession, Technician
from services.config import Settings

TABLE = "bench_insert"
CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL,
    body json NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""
_TABLE = sa.Table(
    TABLE,
    sa.MetaData(),
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("organization_id", sa.Uuid, nullable=False),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

router = APIRouter(prefix="/bench", tags=["bench"])


class Inserted(BaseModel):
    id: uuid.UUID


@router.post("/insert", status_code=201)
async def insert(
    body: Annotated[dict[str, Any], Body()], principal: Technician, session: DbSession
) -> Inserted:
    row_id = uuid.uuid4()
    await session.exec(
        sa.insert(_TABLE).values(
            id=row_id, organization_id=principal.organization_id, body=body, created_at=sa.func.now()
        )
    )
    return Inserted(id=row_id)


def create_bench_app() -> FastAPI:
    app = create_app(Settings())
    app.include_router(router)
    return app
