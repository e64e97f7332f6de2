"""HTTP byte ranges (RFC 9110 section 14) for downloads that resume: one range per request."""

from __future__ import annotations

import re

from services.errors import DomainError, MalformedRequest

_SINGLE = re.compile(r"bytes=([0-9]{0,18})-([0-9]{0,18})")


class InvalidRange(MalformedRequest):
    code = "invalid_range"


class RangeNotSatisfiable(DomainError):
    status = 416
    code = "range_not_satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__(f"the range lies outside the {size} bytes of the file", details={"size": size})
        self.headers = {"Content-Range": f"bytes */{size}"}


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
