"""Accounts and API keys.

A key reads ``sf_<key_id>_<secret>``: ``key_id`` finds the row, the secret is compared by its sha256 in
constant time. The secret has 256 bits of entropy, so a plain sha256 is enough (no password stretching).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from parts_catalog.sqltypes import utcnow
from services.accounts.models import ApiKey, Role
from services.accounts.repository import AccountsRepository, AccountT
from services.errors import Conflict, InvalidRequest, NotFound

_KEY_FORMAT = re.compile(r"sf_([0-9a-f]{12})_([A-Za-z0-9_\-]{43})")

# Which account a key of each role must belong to.
OWNER_OF_ROLE: dict[Role, str | None] = {
    Role.ADMIN: None,
    Role.TECHNICIAN: "organization_id",
    Role.FACTORY: "site_id",
    Role.PARTNER: "partner_id",
}


# The table of each kind of key owner. A site is the registry's (``services.factories``), which builds on
# accounts: its table is named, not imported.
_OWNER_TABLES = {"organization_id": "organization", "site_id": "site", "partner_id": "partner"}


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    key_id: str
    role: Role
    organization_id: uuid.UUID | None = None
    site_id: uuid.UUID | None = None
    partner_id: uuid.UUID | None = None

    @property
    def catalog_scope(self) -> uuid.UUID | None:
        """The organization whose parts this caller may see; None means all (operators)."""
        return None if self.role is Role.ADMIN else self.organization_id


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: ApiKey
    token: str  # shown once, never stored


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class AccountsService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repo = AccountsRepository(session)

    async def create_account(self, kind: type[AccountT], *, slug: str, name: str) -> AccountT:
        if await self.repo.by_slug(kind, slug) is not None:
            raise Conflict(f"{slug!r} is taken", code="slug_taken", details={"slug": slug})
        account = kind(slug=slug, name=name)
        self.session.add(account)
        try:
            await self.session.flush()
        except IntegrityError as exc:
            raise Conflict(f"{slug!r} is taken", code="slug_taken", details={"slug": slug}) from exc
        return account

    async def list_accounts(self, kind: type[AccountT]) -> Sequence[AccountT]:
        return await self.repo.all_accounts(kind)

    async def account_by_slug(self, kind: type[AccountT], slug: str) -> AccountT:
        account = await self.repo.by_slug(kind, slug)
        if account is None:
            raise NotFound(f"no {kind.__tablename__} {slug!r}", code=f"{kind.__tablename__}_not_found")
        return account

    async def issue_key(
        self,
        role: Role,
        *,
        name: str = "",
        organization_id: uuid.UUID | None = None,
        site_id: uuid.UUID | None = None,
        partner_id: uuid.UUID | None = None,
    ) -> IssuedKey:
        owners = {"organization_id": organization_id, "site_id": site_id, "partner_id": partner_id}
        required = OWNER_OF_ROLE[role]
        given = {field for field, value in owners.items() if value is not None}
        if given != ({required} if required else set()):
            wanted = f"exactly {required}" if required else "no organization, site or partner"
            raise InvalidRequest(
                f"a {role} key needs {wanted}",
                code="invalid_key_owner",
                details={"role": role, "required": required, "given": sorted(given)},
            )
        for field in given:
            if not await self.repo.owner_exists(_OWNER_TABLES[field], owners[field]):
                raise NotFound(
                    f"no such {field.removesuffix('_id')}", code=f"{field.removesuffix('_id')}_not_found"
                )
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        key = ApiKey(
            key_id=key_id,
            secret_sha256=_sha256(secret),
            role=role,
            name=name,
            organization_id=organization_id,
            site_id=site_id,
            partner_id=partner_id,
        )
        self.session.add(key)
        await self.session.flush()
        return IssuedKey(key=key, token=f"sf_{key_id}_{secret}")

    async def list_keys(self) -> Sequence[ApiKey]:
        return await self.repo.all_keys()

    async def revoke_key(self, key_id: str) -> ApiKey:
        key = await self.repo.key_by_key_id(key_id)
        if key is None:
            raise NotFound("no such key", code="key_not_found")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            await self.session.flush()
        return key

    async def authenticate(self, token: str) -> Principal | None:
        """The principal a bearer token stands for, or None for a malformed, unknown or revoked key."""
        match = _KEY_FORMAT.fullmatch(token)
        if match is None:
            return None
        key_id, secret = match.groups()
        key = await self.repo.key_by_key_id(key_id)
        if key is None or key.revoked_at is not None:
            return None
        if not hmac.compare_digest(key.secret_sha256, _sha256(secret)):
            return None
        return Principal(
            key_id=key.key_id,
            role=key.role,
            organization_id=key.organization_id,
            site_id=key.site_id,
            partner_id=key.partner_id,
        )
