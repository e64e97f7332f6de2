"""The ``Idempotency-Key`` header as a dependency: claim before the endpoint, release when it fails.

See ``services.idempotency.store`` for the protocol. An endpoint that takes ``IdempotentRequest`` stores its
answer with ``await claim.answer(status, body)`` inside the request's transaction; a replay answers from
the store with the header ``Idempotent-Replayed: true``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from parts_catalog.sqltypes import utcnow
from services.accounts.service import Principal
from services.api.deps import DbSession, Resources, Technician
from services.errors import MalformedRequest
from services.idempotency.store import Claim, IdempotencyStore, StoredResponse, fingerprint

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
# The draft makes the key an sf-string; printable ASCII without spaces covers UUIDs, ULIDs and the like.
_KEY_FORMAT = re.compile(r"^[\x21-\x7e]{8,255}$")
KEY_DESCRIPTION = (
    "Required. A unique value (8-255 printable ASCII characters without spaces; a UUID is ideal) that "
    "makes retries safe. The same key with the same body within 48 h answers with the stored response "
    "(header `Idempotent-Replayed: true`); with a different body: 422 `idempotency_key_reused`; while "
    "the first request is still running: 409 `idempotency_key_in_flight`. A request that failed (any "
    "error) stores nothing and may be retried with the same key."
)

# The header as the OpenAPI document states it (add it to the route's ``openapi_extra``): required, in the
# format above. The dependency reads it as optional itself, so that a missing or malformed key answers 400
# ``idempotency_key_missing``/``_invalid`` rather than FastAPI's generic 422.
OPENAPI_PARAMETER = {
    "name": HEADER,
    "in": "header",
    "required": True,
    "description": KEY_DESCRIPTION,
    "schema": {"type": "string", "pattern": "^[!-~]{8,255}$"},
}


class IdempotentReplay(Exception):
    def __init__(self, stored: StoredResponse) -> None:
        super().__init__("replay")
        self.stored = stored


async def replay_response(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IdempotentReplay)
    return JSONResponse(
        exc.stored.body, status_code=exc.stored.status, headers={"Idempotent-Replayed": "true"}
    )


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    store: IdempotencyStore
    session: AsyncSession
    claim: Claim

    async def answer(self, status: int, body: BaseModel) -> None:
        stored: dict[str, Any] = body.model_dump(mode="json")
        await self.store.complete(self.session, self.claim, status, stored)


def owner_of(principal: Principal) -> str:
    # Per account, as at Stripe: two technicians of one organization share its key space.
    account = principal.organization_id or principal.site_id or principal.partner_id
    return f"account:{account}" if account is not None else f"key:{principal.key_id}"


async def claim_idempotency_key(
    request: Request,
    principal: Technician,
    session: DbSession,
    resources: Resources,
    # Documented by OPENAPI_PARAMETER instead: FastAPI would call an optional header optional.
    key: Annotated[str | None, Header(alias=HEADER, include_in_schema=False)] = None,
) -> AsyncIterator[IdempotencyClaim]:
    if key is None:
        raise MalformedRequest(f"send an {HEADER} header (a UUID will do)", code="idempotency_key_missing")
    if not _KEY_FORMAT.fullmatch(key):
        raise MalformedRequest(
            f"{HEADER} must be 8-255 printable ASCII characters without spaces",
            code="idempotency_key_invalid",
        )
    store = resources.idempotency
    outcome = await store.claim(
        session,
        owner_of(principal),
        key,
        fingerprint(request.method, request.url.path, await request.body()),
        now=utcnow(),
    )
    if isinstance(outcome, StoredResponse):
        raise IdempotentReplay(outcome)
    try:
        yield IdempotencyClaim(store, session, outcome)
        # Commit here rather than in the session's own teardown, which runs after this one: a commit that
        # fails (the connection died under it) must release the key like any other failure, or the client's
        # retry would be refused as in flight until the lock timeout. Should the commit have gone through
        # unanswered, the key holds its answer, the release leaves it, and the retry replays it.
        await session.commit()
    except BaseException:
        try:
            await store.release(session, outcome)
        except Exception:  # the database went away: the claim expires after the lock timeout instead
            log.warning("could not release idempotency key %r", key, exc_info=True)
        raise


# scope="function" like the DbSession it writes the answer into.
IdempotentRequest = Annotated[IdempotencyClaim, Depends(claim_idempotency_key, scope="function")]
