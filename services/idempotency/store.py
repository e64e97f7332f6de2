"""Claim, answer and release idempotency keys.

The protocol (IETF draft-ietf-httpapi-idempotency-key-header; Stripe's API behaves the same):

- the first request with a key claims it and commits the claim before it does anything else, so a
  concurrent retry sees the claim;
- the answer is stored in the *request's* transaction, together with what the request wrote: a key is
  answered if and only if its effects are committed;
- a retry with the same key and the same request gets the stored answer again, byte for byte;
- the same key with a different request is refused (422), and so is a retry while the first is still in
  flight (409);
- a request that fails releases its key, so that the client may retry it;
- a claim whose request died (process killed) is taken over after ``lock_timeout``; should that request
  still be running after all (slower than the timeout), it can no longer answer, release or commit: each
  claim carries the time it locked the key as a fence, and only the newest claim's holder may answer;
- keys are kept for ``retention`` (at least 24 h), then purged.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.errors import Conflict, InvalidRequest
from services.idempotency.models import IdempotencyRecord
from services.validation import InputRefused, loads


class IdempotencyKeyReused(InvalidRequest):
    code = "idempotency_key_reused"


class IdempotencyKeyInFlight(Conflict):
    code = "idempotency_key_in_flight"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Claim:
    record_id: uuid.UUID
    # The fence: when this request locked the key. A takeover stamps a newer time, after which the request
    # it took over from finds its answer refused. Two claims compare equal when they are of the same key.
    locked_at: datetime = field(compare=False)


def fingerprint(method: str, path: str, body: bytes) -> str:
    """The request's identity: JSON bodies are compared by content, not by whitespace or key order."""
    # The strict decoder: the body may be anything when its content type is not JSON (the edge decodes JSON
    # bodies only), and json.loads raises RecursionError on one nested thousands deep.
    try:
        canonical = json.dumps(loads(body), sort_keys=True, separators=(",", ":")).encode()
    except InputRefused:
        canonical = body
    digest = hashlib.sha256(f"{method.upper()} {path}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()


class IdempotencyStore:
    """Works in the request's own session, so that a request needs one database connection, not two."""

    def __init__(self, *, retention: timedelta, lock_timeout: timedelta) -> None:
        self.retention = retention
        self.lock_timeout = lock_timeout

    async def claim(
        self, session: AsyncSession, owner: str, key: str, request_fingerprint: str, *, now: datetime
    ) -> Claim | StoredResponse:
        """Claim ``key`` for a new request and commit the claim, or return the answer stored for the same
        request. The session then starts the request's own transaction.

        Raises:
            IdempotencyKeyReused: the key was used for a different request.
            IdempotencyKeyInFlight: the first request with this key has not finished.
        """
        for _ in range(2):  # a second round only after losing an insert race
            found = await self._lookup(session, owner, key, now=now)
            if found is None:
                record = IdempotencyRecord(
                    owner=owner,
                    key=key,
                    fingerprint=request_fingerprint,
                    locked_at=now,
                    created_at=now,
                    expires_at=now + self.retention,
                )
                session.add(record)
                try:
                    await session.commit()
                except IntegrityError:
                    await session.rollback()
                    continue
                return Claim(record.id, now)
            try:
                outcome = await self._existing(session, found, request_fingerprint, now=now)
            except BaseException:
                # A refusal wrote nothing, and a takeover that failed must not be half-committed: the rollback
                # ends the row lock. A commit here would also bury a lost connection under SQLAlchemy's
                # PendingRollbackError, which no handler knows for a database that went away.
                await session.rollback()
                raise
            await session.commit()  # ends the row lock
            return outcome
        raise IdempotencyKeyInFlight("a request with this idempotency key is in flight; retry later")

    async def complete(self, session: AsyncSession, claim: Claim, status: int, body: dict[str, Any]) -> None:
        """Store the answer in the request's own transaction (see the module docstring).

        Raises:
            IdempotencyKeyInFlight: a retry took the key over (this request outlived the lock timeout); the
                request's transaction must roll back, so that only the retry's effects are committed.
        """
        result = await session.exec(
            sa.update(IdempotencyRecord)
            .where(*_held(claim), col(IdempotencyRecord.response_status).is_(None))
            .values(response_status=status, response_body=body)
        )
        if result.rowcount != 1:
            raise IdempotencyKeyInFlight(
                "a retry with this idempotency key took over from this request; retry for its answer",
                details={"retry_after_seconds": 1},
            )

    @staticmethod
    async def release(session: AsyncSession, claim: Claim) -> None:
        """Roll the failed request back and forget its unanswered claim (unless a retry took it over), so that
        it may be retried."""
        await session.rollback()
        await session.exec(
            sa.delete(IdempotencyRecord).where(
                *_held(claim), col(IdempotencyRecord.response_status).is_(None)
            )
        )
        await session.commit()

    @staticmethod
    async def purge_expired(session: AsyncSession, *, now: datetime) -> int:
        result = await session.exec(
            sa.delete(IdempotencyRecord).where(col(IdempotencyRecord.expires_at) <= now)
        )
        return int(result.rowcount)

    async def _lookup(
        self, session: AsyncSession, owner: str, key: str, *, now: datetime
    ) -> IdempotencyRecord | None:
        query = (
            select(IdempotencyRecord)
            .where(IdempotencyRecord.owner == owner, IdempotencyRecord.key == key)
            .with_for_update()
        )
        found = (await session.exec(query)).first()
        if found is not None and found.expires_at <= now:
            await session.delete(found)  # past retention: the key is free again
            await session.flush()
            return None
        return found

    async def _existing(
        self, session: AsyncSession, record: IdempotencyRecord, request_fingerprint: str, *, now: datetime
    ) -> Claim | StoredResponse:
        if record.fingerprint != request_fingerprint:
            raise IdempotencyKeyReused(
                "this idempotency key was used for a different request; use a new key for a new request"
            )
        if record.response_status is not None and record.response_body is not None:
            return StoredResponse(record.response_status, record.response_body)
        if record.locked_at > now - self.lock_timeout:
            raise IdempotencyKeyInFlight(
                "a request with this idempotency key is in flight; retry later",
                details={"retry_after_seconds": 1},
            )
        # The first request died without an answer or a release (its process was killed): take it over.
        record.locked_at = now
        await session.flush()
        return Claim(record.id, now)


def _held(claim: Claim) -> tuple[sa.ColumnElement[bool], ...]:
    """The key's row, as long as no retry has taken it over from ``claim``."""
    return col(IdempotencyRecord.id) == claim.record_id, col(IdempotencyRecord.locked_at) == claim.locked_at
