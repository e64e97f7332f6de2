"""The one download response: headers every file carries, and byte ranges where the endpoint offers them."""

from __future__ import annotations

import hashlib

import pytest

from services.api.downloads import (
    InvalidRange,
    RangeNotSatisfiable,
    RangeRequest,
    byte_range,
    content_disposition,
    content_download,
    download_response,
)

CONTENT = b"0123456789"
SHA = hashlib.sha256(CONTENT).hexdigest()


async def body(response: object) -> bytes:
    chunks = [chunk async for chunk in response.body_iterator]  # type: ignore[attr-defined]
    return b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks)


async def test_a_whole_download_says_what_it_is() -> None:
    response = download_response(content_download(CONTENT, media_type="application/pdf", filename="l.pdf"))

    assert response.status_code == 200
    assert response.headers["etag"] == f'"{SHA}"'
    assert response.headers["repr-digest"].startswith("sha-256=:")
    assert response.headers["content-length"] == "10"
    assert response.headers["content-disposition"] == 'attachment; filename="l.pdf"'
    assert "accept-ranges" not in response.headers
    assert await body(response) == CONTENT


async def test_a_range_is_sent_only_where_the_endpoint_offers_ranges() -> None:
    download = content_download(CONTENT, media_type="application/pdf", filename="l.pdf")

    partial = download_response(download, ranges=RangeRequest("bytes=2-4"))

    assert partial.status_code == 206
    assert partial.headers["content-range"] == "bytes 2-4/10"
    assert partial.headers["content-length"] == "3"
    assert await body(partial) == b"234"


async def test_a_stale_if_range_gets_the_whole_file() -> None:
    download = content_download(CONTENT, media_type="application/pdf", filename="l.pdf")

    response = download_response(download, ranges=RangeRequest("bytes=2-", '"other"'))

    assert response.status_code == 200
    assert await body(response) == CONTENT


def test_a_name_that_is_not_plain_ascii_is_encoded() -> None:
    assert (
        content_disposition('bracket "v2" ü.stl')
        == "attachment; filename*=UTF-8''bracket%20%22v2%22%20%C3%BC.stl"
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [("bytes=0-", (0, 10)), ("bytes=-3", (7, 10)), ("bytes=5-100", (5, 10)), ("bytes=0-1,4-5", None)],
)
def test_byte_ranges(header: str, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, 10) == expected


@pytest.mark.parametrize(
    ("header", "error"), [("lines=1-2", InvalidRange), ("bytes=10-", RangeNotSatisfiable)]
)
def test_bad_ranges_are_refused(header: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        byte_range(header, 10)
