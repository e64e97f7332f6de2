"""Partners' webhook secrets: issued by us (Standard Webhooks) or registered as the partner gave them
(Karrio's subscription secret). Rotation keeps the old secret valid until its expiry."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from parts_catalog.sqltypes import utcnow
from services.accounts.models import Partner
from services.accounts.repository import AccountsRepository
from services.db import SessionFactory, transaction
from services.errors import NotFound
from services.signing import new_secret
from services.webhooks.inbound.models import PartnerSecret


class PartnerSecrets:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        partner_id: uuid.UUID,
        *,
        secret: str | None = None,
        retire_others_after: timedelta | None = None,
        now: datetime | None = None,
    ) -> PartnerSecret:
        """A new secret (``whsec_`` generated unless one is given); with ``retire_others_after`` the partner's
        other secrets stop working then, which is how a rotation ends."""
        now = now or utcnow()
        if await self.session.get(Partner, partner_id) is None:
            raise NotFound(
                "no such partner", code="partner_not_found", details={"partner_id": str(partner_id)}
            )
        if retire_others_after is not None:
            for other in await self.of(partner_id):
                if other.expires_at is None or other.expires_at > now + retire_others_after:
                    other.expires_at = now + retire_others_after
        added = PartnerSecret(partner_id=partner_id, secret=secret or new_secret(), created_at=now)
        self.session.add(added)
        await self.session.flush()
        return added

    async def current(self, partner_id: uuid.UUID, *, now: datetime) -> list[str]:
        """The partner's secrets that verify now, oldest first."""
        query = (
            select(PartnerSecret.secret)
            .where(
                PartnerSecret.partner_id == partner_id,
                col(PartnerSecret.expires_at).is_(None) | (col(PartnerSecret.expires_at) > now),
            )
            .order_by(col(PartnerSecret.created_at))
        )
        return list((await self.session.exec(query)).all())

    async def of(self, partner_id: uuid.UUID) -> Sequence[PartnerSecret]:
        query = (
            select(PartnerSecret)
            .where(PartnerSecret.partner_id == partner_id)
            .order_by(col(PartnerSecret.created_at))
        )
        return (await self.session.exec(query)).all()


async def ensure_partner_secret(sessions: SessionFactory, slug: str, name: str) -> str:
    """The partner ``slug`` (created if missing) and a current secret of it (issued if none): how the
    built-in courier gets the secret it signs with. Safe when several processes start at once."""
    now = utcnow()
    for _ in range(3):
        try:
            async with transaction(sessions) as session:
                partner = await AccountsRepository(session).by_slug(Partner, slug)
                if partner is None:
                    partner = Partner(slug=slug, name=name)
                    session.add(partner)
                    await session.flush()
                secrets = PartnerSecrets(session)
                current = await secrets.current(partner.id, now=now)
                if current:
                    return current[-1]
                return (await secrets.add(partner.id, now=now)).secret
        except IntegrityError:
            continue  # another process created the partner first: read theirs
    raise RuntimeError(f"could not create partner {slug!r}")
