"""Shared fixtures: real databases (SQLite and PostgreSQL), real Redis, the app over ASGI.

PostgreSQL and Redis are expected on loopback (``.ci/run`` starts them); their URLs can be overridden with
SPAREFLOW_TEST_POSTGRES_URL and SPAREFLOW_TEST_REDIS_URL. Each test session gets a database of its own.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

import services.models  # noqa: F401  (all tables on the metadata)
from parts_catalog.storage import LocalBlobStore
from services.config import Settings
from services.db import create_engine, session_factory
from services.fulfilment.unit_of_work import order_transaction
from services.migrate import upgrade
from services.orders.reoptimize import OpenOrders
from services.routing.snapshot import SnapshotCache
from tests import tally
from tests.builders import app_client, asyncpg_dsn
from tests.peers import KarrioPeer, karrio_server

POSTGRES_URL = os.environ.get(
    "SPAREFLOW_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("SPAREFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SHARED = Path(__file__).resolve().parents[2] / "shared"
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
async def postgresql_url() -> AsyncIterator[str]:
    name = f"spareflow_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(asyncpg_dsn(POSTGRES_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        await upgrade(url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
async def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'spareflow.db'}"
    await upgrade(url)
    return url


async def _empty_tables(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]
            if conn.dialect.name == "postgresql":
                await conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} CASCADE"))
            else:
                for table in tables:
                    await conn.execute(sa.text(f"DELETE FROM {table}"))
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
def migrated_url(request: pytest.FixtureRequest) -> str:
    # Sync on purpose: pytest-asyncio cannot resolve an async fixture by name from inside another one.
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
async def database_url(migrated_url: str) -> str:
    """A migrated, empty database: each test using it runs once on SQLite and once on PostgreSQL."""
    await _empty_tables(migrated_url)
    return migrated_url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=REDIS_URL,
        # A queue of its own: no test ever sees another test's jobs.
        queue_name=f"test:{uuid.uuid4().hex}",
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An unauthenticated client of a fresh app; see tests.builders for keys."""
    async with app_client(settings) as http:
        yield http


@pytest.fixture(scope="session")
def karrio_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KarrioPeer]:
    """A real Karrio, started on first use and shared by the session (skips without ../shared).

    Sync on purpose: the courier contract's async harnesses look it up by name (getfixturevalue)."""
    with karrio_server(tmp_path_factory) as peer:
        yield peer


@pytest.fixture
def shared_corpus() -> Path:
    corpus = SHARED / "corpus"
    if not (corpus / "manifest.csv").is_file():
        pytest.skip("../shared/corpus is not present")
    return corpus


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the chaos and fuzz counts (tests/tally.py) after the run, passed or failed."""
    if tally.RECORDED:
        terminalreporter.section("chaos and fuzz counts")
        for recorded in tally.RECORDED:
            terminalreporter.write_line(recorded.line())


@pytest.fixture
async def orders_in(settings: Settings) -> AsyncIterator[OpenOrders]:
    """OrderService in transactions of its own, as the worker's jobs use it."""
    engine = create_engine(settings.resolved_database_url)
    sessions, blobs = session_factory(engine), LocalBlobStore(settings.resolved_blob_dir)
    snapshots = SnapshotCache(max_age_s=0)
    yield lambda: order_transaction(
        sessions, None, blobs, archive_limits=settings.archive_limits, snapshots=snapshots
    )
    await engine.dispose()
