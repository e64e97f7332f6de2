"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from services.db import create_engine


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": False})
    return [change for change in compare_metadata(context, SQLModel.metadata) if not _owner_fk(change)]


def _owner_fk(change: Any) -> bool:
    """part.organization_id -> organization.id lives only in the migrations: the catalog library models an
    owner id, not the platform's account tables."""
    if not (isinstance(change, tuple) and change[0] == "remove_fk"):
        return False
    fk = change[1]
    return bool(fk.table.name == "part" and [c.name for c in fk.columns] == ["organization_id"])


# SQLAlchemy cannot reflect expression indexes (lower(...)) on SQLite and says so; alembic skips them.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
async def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()
