"""Account and key queries. Nothing here commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TypeVar

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.models import ApiKey, NamedAccount

AccountT = TypeVar("AccountT", bound=NamedAccount)


class AccountsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_slug(self, kind: type[AccountT], slug: str) -> AccountT | None:
        return (await self.session.exec(select(kind).where(col(kind.slug) == slug))).first()

    async def all_accounts(self, kind: type[AccountT]) -> Sequence[AccountT]:
        return (await self.session.exec(select(kind).order_by(col(kind.slug)))).all()

    async def key_by_key_id(self, key_id: str) -> ApiKey | None:
        return (await self.session.exec(select(ApiKey).where(ApiKey.key_id == key_id))).first()

    async def all_keys(self) -> Sequence[ApiKey]:
        return (await self.session.exec(select(ApiKey).order_by(col(ApiKey.created_at)))).all()

    async def owner_exists(self, table: str, owner_id: uuid.UUID | None) -> bool:
        """Whether a row with this id exists in ``table`` (a key's organization, site or partner)."""
        owners = sa.table(table, sa.column("id"))
        found = await self.session.exec(select(owners.c.id).where(owners.c.id == owner_id))
        return found.first() is not None
