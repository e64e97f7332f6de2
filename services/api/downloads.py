"""Downloads: the one way the API sends a file (a part's model, a job's G-code, a shipping label).

Every download carries ``Content-Type``, ``Content-Length``, ``Content-Disposition: attachment`` with its
file name, and its sha256 twice: as the ``ETag`` and as ``Repr-Digest`` (RFC 9530). An endpoint whose
downloads resume passes the request's ``Range`` and ``If-Range`` (RFC 9110 sections 14 and 13.1.5): one
byte range per request, answered 206 with ``Content-Range``; an ``If-Range`` that is not the current ETag
gets the whole file.

Endpoints parse, call their service, and return ``download_response(...)`` of a ``Download`` built with
``blob_download`` (a file in the blob store) or ``content_download`` (bytes in hand).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import quote

from fastapi.responses import StreamingResponse

from parts_catalog.storage import BlobNotFound, BlobStore
from services.errors import DomainError, MalformedRequest, NotFound

_SINGLE = re.compile(r"bytes=([0-9]{0,18})-([0-9]{0,18})")
# A file name that can go in a quoted `filename="..."` as it is (RFC 6266): printable ASCII, no quote or
# backslash. Any other name goes in `filename*` (RFC 8187), percent-encoded UTF-8.
_PLAIN_NAME = re.compile(r"[\x20-\x7e]+")

Reader = Callable[[int, int | None], AsyncIterator[bytes]]
"""Streams bytes ``[start, end)`` of the file; to its end when ``end`` is None."""


class InvalidRange(MalformedRequest):
    code = "invalid_range"


class RangeNotSatisfiable(DomainError):
    status = 416
    code = "range_not_satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__(f"the range lies outside the {size} bytes of the file", details={"size": size})
        self.headers = {"Content-Range": f"bytes */{size}"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Download:
    """A file to send: what it is, how long, its sha256, and how to read it."""

    sha256: str
    size: int
    media_type: str
    filename: str
    read: Reader


@dataclass(frozen=True, slots=True)
class RangeRequest:
    """The ``Range`` and ``If-Range`` headers of a request to an endpoint whose downloads resume."""

    range: str | None = None
    if_range: str | None = None


async def blob_download(
    blobs: BlobStore, sha256: str, *, media_type: str, filename: str, size: int | None = None
) -> Download:
    """A file of the blob store. ``size`` None: ask the store (one stat), which raises NotFound
    (``artifact_missing``) when the file is gone; a known ``size`` is taken as it is."""
    if size is None:
        try:
            size = await blobs.size(sha256)
        except BlobNotFound as exc:
            raise NotFound("the artifact's file is missing", code="artifact_missing") from exc

    def read(start: int, end: int | None) -> AsyncIterator[bytes]:
        return blobs.read(sha256, start=start, end=end)

    return Download(sha256=sha256, size=size, media_type=media_type, filename=filename, read=read)


def content_download(content: bytes, *, media_type: str, filename: str) -> Download:
    """A file held in memory (a label stored in its row)."""

    async def read(start: int, end: int | None) -> AsyncIterator[bytes]:
        yield content[start:end]

    return Download(
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
        media_type=media_type,
        filename=filename,
        read=read,
    )


def download_response(download: Download, *, ranges: RangeRequest | None = None) -> StreamingResponse:
    """The whole file (200), or with ``ranges`` the byte range the request asks for (206).

    ``ranges`` None: the endpoint does not offer ranges (no ``Accept-Ranges``), and always sends the whole
    file. Raises InvalidRange (400) and RangeNotSatisfiable (416), from ``byte_range``.
    """
    etag = f'"{download.sha256}"'
    digest = base64.b64encode(bytes.fromhex(download.sha256)).decode()
    headers = {
        "ETag": etag,
        "Repr-Digest": f"sha-256=:{digest}:",
        "Content-Disposition": content_disposition(download.filename),
    }
    start, end, status = 0, None, 200
    if ranges is not None:
        headers["Accept-Ranges"] = "bytes"
        if ranges.range is not None and (ranges.if_range is None or ranges.if_range.strip() == etag):
            wanted = byte_range(ranges.range, download.size)
            if wanted is not None:
                (start, end), status = wanted, 206
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{download.size}"
    headers["Content-Length"] = str((download.size if end is None else end) - start)
    return StreamingResponse(
        download.read(start, end), status_code=status, media_type=download.media_type, headers=headers
    )


def content_disposition(filename: str) -> str:
    """``attachment`` with the file name: quoted when it is plain ASCII, else RFC 8187-encoded."""
    if _PLAIN_NAME.fullmatch(filename) and '"' not in filename and "\\" not in filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename*=UTF-8''{quote(filename)}"


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """``[start, end)`` asked for by a ``Range`` header, or None to send the whole file.

    Several ranges get the whole file, which RFC 9110 allows; agents resume with one open range.
    Raises InvalidRange (400) for a header that is not a byte range, RangeNotSatisfiable (416) for one
    that starts past the end.
    """
    spec = header.replace(" ", "")
    if "," in spec and spec.startswith("bytes="):
        return None
    match = _SINGLE.fullmatch(spec)
    if match is None or match.groups() == ("", ""):
        raise InvalidRange(
            "Range must be `bytes=START-END`, `bytes=START-` or `bytes=-SUFFIX`",
            details={"range": header[:100]},
        )
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - suffix), size
    start = int(first)
    if last and int(last) < start:
        raise InvalidRange("the range ends before it starts", details={"range": header[:100]})
    if start >= size:
        raise RangeNotSatisfiable(size)
    return start, size if last == "" else min(int(last) + 1, size)
