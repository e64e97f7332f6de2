"""Standard Webhooks signing and verification, checked against the scheme's reference library: any change
of a byte, a header or the timestamp fails; rotation with several signatures works; the window holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.signing import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TOLERANCE,
    VerificationFailed,
    new_secret,
    sign,
    verify,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SECRET = new_secret()
bodies = st.text(max_size=300).map(str.encode)  # the reference library handles text bodies only
msg_ids = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)
skews = st.integers(
    min_value=-int(TOLERANCE.total_seconds()) + 1, max_value=int(TOLERANCE.total_seconds()) - 1
)


def _reason(headers: dict[str, str], body: bytes, secrets: list[str] | None = None) -> str:
    with pytest.raises(VerificationFailed) as refused:
        verify(secrets or [SECRET], headers, body, now=NOW)
    return refused.value.reason


@settings(max_examples=60, deadline=None)
@given(body=bodies, msg_id=msg_ids, skew=skews)
def test_ours_and_the_reference_agree(body: bytes, msg_id: str, skew: int) -> None:
    sent = NOW + timedelta(seconds=skew)
    headers = sign([SECRET], msg_id, sent, body)
    assert verify([SECRET], headers, body, now=NOW).msg_id == msg_id
    reference = Webhook(SECRET)
    # The reference checks the timestamp against the real clock: give it one signed now.
    fresh = sign([SECRET], msg_id, datetime.now(UTC), body)
    reference.verify(body, fresh, json_parse=False)
    theirs = reference.sign(msg_id, sent, body.decode())
    assert verify([SECRET], {**headers, SIGNATURE_HEADER: theirs}, body, now=NOW).msg_id == msg_id


@settings(max_examples=80, deadline=None)
@given(body=st.binary(min_size=1, max_size=300), msg_id=msg_ids, data=st.data())
def test_any_changed_byte_fails(body: bytes, msg_id: str, data: st.DataObject) -> None:
    headers = sign([SECRET], msg_id, NOW, body)
    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    changed = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    assert _reason(headers, changed) == "invalid_signature"
    assert _reason(headers, body + b" ") == "invalid_signature"


@settings(max_examples=60, deadline=None)
@given(body=bodies, msg_id=msg_ids, other=msg_ids, shift=st.integers(min_value=1, max_value=200))
def test_any_changed_header_or_timestamp_fails(body: bytes, msg_id: str, other: str, shift: int) -> None:
    headers = sign([SECRET], msg_id, NOW, body)
    if other != msg_id:
        assert _reason({**headers, ID_HEADER: other}, body) == "invalid_signature"
    # Still inside the window, so only the signature can tell.
    for moved in (int(NOW.timestamp()) + shift, int(NOW.timestamp()) - shift):
        assert _reason({**headers, TIMESTAMP_HEADER: str(moved)}, body) == "invalid_signature"
    signature = headers[SIGNATURE_HEADER]
    tampered = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert _reason({**headers, SIGNATURE_HEADER: tampered}, body) == "invalid_signature"
    assert _reason(headers, body, secrets=[new_secret()]) == "invalid_signature"


def test_the_window_is_five_minutes_either_way() -> None:
    body = b'{"type":"tracking.updated"}'
    for skew, reason in (
        (-TOLERANCE - timedelta(seconds=1), "timestamp_too_old"),
        (TOLERANCE + timedelta(seconds=1), "timestamp_in_future"),
    ):
        assert _reason(sign([SECRET], "msg_1", NOW + skew, body), body) == reason
    for skew in (-TOLERANCE + timedelta(seconds=1), TOLERANCE - timedelta(seconds=1)):
        verify([SECRET], sign([SECRET], "msg_1", NOW + skew, body), body, now=NOW)


def test_rotation_signs_with_both_and_either_verifies() -> None:
    old, new = new_secret(), new_secret()
    body = b'{"a":1}'
    headers = sign([old, new], "msg_2", NOW, body)
    assert len(headers[SIGNATURE_HEADER].split(" ")) == 2
    verify([old], headers, body, now=NOW)
    verify([new], headers, body, now=NOW)
    # The reference library accepts a header with several signatures too.
    Webhook(new).verify(body, sign([old, new], "msg_2", datetime.now(UTC), body), json_parse=False)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(
            body, sign([old, new], "msg_2", datetime.now(UTC), body), json_parse=False
        )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({ID_HEADER: ""}, "missing_headers"),
        ({SIGNATURE_HEADER: ""}, "missing_headers"),
        ({TIMESTAMP_HEADER: "yesterday"}, "invalid_headers"),
        ({TIMESTAMP_HEADER: "-5"}, "invalid_headers"),
        ({SIGNATURE_HEADER: "v1a,abc v2,def"}, "invalid_signature"),
        ({SIGNATURE_HEADER: "v1,not base64!"}, "invalid_signature"),
        ({ID_HEADER: "x" * 201}, "invalid_headers"),
    ],
)
def test_malformed_headers_are_refused_with_a_reason(change: dict[str, str], reason: str) -> None:
    body = b"{}"
    assert _reason({**sign([SECRET], "msg_3", NOW, body), **change}, body) == reason
