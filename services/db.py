"""Engine and session factories. Nothing connects at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import sqlalchemy as sa
from arq.connections import ArqRedis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from services.queue import send, take_outbox

SessionFactory = async_sessionmaker[AsyncSession]
# How our connections show in PostgreSQL's pg_stat_activity: an operator (or a chaos test) can tell them
# from a psql session or a migration tool's, and find or terminate exactly these.
APPLICATION_NAME = "spareflow"
# What a database that went away raises past SQLAlchemy. SQLAlchemy wraps the driver's errors in DBAPIError,
# except where it opens a connection: the socket (a server that is down refuses it: ConnectionRefusedError)
# and the setup it runs on a fresh connection (asyncpg's type codecs; a connection terminated right after it
# was opened raises asyncpg's own InterfaceError there).
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    ConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
)


# Alembic's table, which every migrated database has: the write that takes SQLite's lock goes there, so that
# locking depends on no table of any package's.
_ALEMBIC_VERSION = sa.table("alembic_version", sa.column("version_num"))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed while one writer writes; the busy timeout makes writers queue instead of
    # failing with "database is locked"; SQLite leaves foreign keys off unless asked.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # pool_pre_ping: a pooled connection that the server dropped while it sat idle (a restart, a failover,
    # pg_terminate_backend) is replaced when it is checked out, instead of failing the next request.
    return create_async_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": APPLICATION_NAME}},
    )


def session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: SessionFactory, queue: ArqRedis | None = None) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit when the block succeeds, roll back when it raises.

    Jobs enqueued with ``services.queue.enqueue_after_commit`` are sent to ``queue`` after the commit and
    dropped on rollback.
    """
    async with sessions() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            take_outbox(session)
            raise
        await send(queue, take_outbox(session))


def is_sqlite(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "sqlite"


async def serialize_writes(session: AsyncSession) -> None:
    """On SQLite, take the database's single write lock now, before the reads the transaction relies on.

    SQLite has no row locks and ignores FOR UPDATE; a write that changes nothing takes its write lock, and
    the driver's transaction starts with it (so a later savepoint nests inside it instead of being the
    transaction, whose release would commit). PostgreSQL needs nothing here: its callers lock the rows they
    depend on (``RoutingRepository.lock_sites``, ``FOR UPDATE`` reads).
    """
    if is_sqlite(session):
        version = _ALEMBIC_VERSION.c.version_num
        await session.exec(sa.update(_ALEMBIC_VERSION).where(sa.false()).values(version_num=version))
