"""Organizations and logistics partners (operators only), API keys, and whoami. Sites: ``sites.py``."""

from __future__ import annotations

from fastapi import APIRouter

from services.accounts.models import Organization, Partner
from services.accounts.repository import AccountT
from services.api.deps import Accounts, Admin, AnyRole
from services.api.endpoints import error_responses
from services.api.schemas import AccountIn, AccountOut, IssuedKeyOut, KeyIn, KeyOut, MeOut

router = APIRouter()


def _account_routes(kind: type[AccountT], path: str, label: str) -> None:
    @router.post(
        path,
        status_code=201,
        tags=["accounts"],
        summary=f"Create a {label}",
        responses=error_responses(400, 409, 422),
    )
    async def create(body: AccountIn, _: Admin, accounts: Accounts) -> AccountOut:
        return AccountOut.of(await accounts.create_account(kind, slug=body.slug, name=body.name))

    @router.get(path, tags=["accounts"], summary=f"List {label}s", responses=error_responses())
    async def list_all(_: Admin, accounts: Accounts) -> list[AccountOut]:
        return [AccountOut.of(a) for a in await accounts.list_accounts(kind)]


_account_routes(Organization, "/organizations", "customer organization")
_account_routes(Partner, "/partners", "logistics partner")


@router.post("/keys", status_code=201, tags=["keys"], responses=error_responses(400, 404, 422))
async def create_key(body: KeyIn, _: Admin, accounts: Accounts) -> IssuedKeyOut:
    """Issue an API key. The token is in this response only; store it now."""
    issued = await accounts.issue_key(
        body.role,
        name=body.name,
        organization_id=body.organization_id,
        site_id=body.site_id,
        partner_id=body.partner_id,
    )
    return IssuedKeyOut.issued(issued)


@router.get("/keys", tags=["keys"], responses=error_responses())
async def list_keys(_: Admin, accounts: Accounts) -> list[KeyOut]:
    return [KeyOut.of(k) for k in await accounts.list_keys()]


@router.delete("/keys/{key_id}", tags=["keys"], responses=error_responses(404, 422))
async def revoke_key(key_id: str, _: Admin, accounts: Accounts) -> KeyOut:
    return KeyOut.of(await accounts.revoke_key(key_id))


@router.get("/me", tags=["keys"], responses=error_responses())
async def whoami(principal: AnyRole) -> MeOut:
    """The role and owner of the calling key."""
    return MeOut.of(principal)
