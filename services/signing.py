"""The Standard Webhooks scheme (standardwebhooks.com), both ways.

Headers ``webhook-id``, ``webhook-timestamp`` (unix seconds) and ``webhook-signature``: space-separated
``v1,<base64 HMAC-SHA256>`` entries, keyed with the base64-decoded ``whsec_`` secret, over
``{id}.{timestamp}.{raw body}``. Several entries let a sender sign with an old and a new secret while the
receiver rotates. Verification works on the raw bytes as received (re-serialised JSON would not match),
compares in constant time and refuses timestamps outside the tolerance either way; deduplicating by
``webhook-id`` inside that window is the receiver's job (``services.webhooks.inbound.service``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

SECRET_PREFIX = "whsec_"  # noqa: S105  (the scheme's marker, not a secret)
TOLERANCE = timedelta(minutes=5)
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


class VerificationFailed(Exception):
    """Why a webhook was refused; ``reason`` is a stable, machine-readable word (a metric label)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ValueError("a webhook secret is whsec_ followed by base64") from exc


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def sign(secrets_: Iterable[str], msg_id: str, timestamp: datetime, body: bytes) -> dict[str, str]:
    """The three headers for ``body``, signed with every secret given (old and new while rotating)."""
    seconds = int(timestamp.timestamp())
    signatures = " ".join(
        "v1," + base64.b64encode(_signature(_key(s), msg_id, seconds, body)).decode() for s in secrets_
    )
    return {ID_HEADER: msg_id, TIMESTAMP_HEADER: str(seconds), SIGNATURE_HEADER: signatures}


@dataclass(frozen=True, slots=True)
class Verified:
    msg_id: str
    timestamp: datetime


def verify(
    secrets_: Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime,
    tolerance: timedelta = TOLERANCE,
) -> Verified:
    """Check ``body`` as received against any of the receiver's secrets; raises VerificationFailed.

    ``headers`` must look names up case-insensitively (Starlette's and httpx's headers do)."""
    msg_id = headers.get(ID_HEADER, "")
    stamp = headers.get(TIMESTAMP_HEADER, "")
    signatures = headers.get(SIGNATURE_HEADER, "")
    if not msg_id or not stamp or not signatures:
        raise VerificationFailed(
            "missing_headers", f"{ID_HEADER}, {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required"
        )
    if len(msg_id) > 200:
        raise VerificationFailed("invalid_headers", f"{ID_HEADER} is longer than 200 characters")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise VerificationFailed("invalid_headers", f"{TIMESTAMP_HEADER} is not unix seconds")
    seconds = int(stamp)
    # Compared as numbers: twelve digits reach past year 9999, where a datetime cannot go (ValueError, a 500
    # for any caller, before the signature is even looked at).
    if seconds < (now - tolerance).timestamp():
        raise VerificationFailed("timestamp_too_old", "the webhook's timestamp is too old")
    if seconds > (now + tolerance).timestamp():
        raise VerificationFailed("timestamp_in_future", "the webhook's timestamp is in the future")
    sent = datetime.fromtimestamp(seconds, tz=now.tzinfo)
    offered = []
    for entry in signatures.split(" "):
        version, _, value = entry.partition(",")
        if version != "v1":
            continue  # another scheme (v1a: asymmetric) or padding: not ours to judge
        try:
            offered.append(base64.b64decode(value, validate=True))
        except binascii.Error:
            continue
    for secret in secrets_:
        expected = _signature(_key(secret), msg_id, seconds, body)
        # Every offered entry is compared, in constant time each: no early exit tells which one matched.
        if any([hmac.compare_digest(expected, candidate) for candidate in offered]):
            return Verified(msg_id=msg_id, timestamp=sent)
    raise VerificationFailed("invalid_signature", "no signature matches")
