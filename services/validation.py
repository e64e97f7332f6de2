"""What any input to the platform may be, whichever route it comes through: the one strict JSON decoder, the
one rule for characters, and the one aware-UTC datetime type.

The API's edge (``services.api.edge``) applies the decoder and the character rule to every JSON body, path,
query string and header it reads; the signed webhook routes, which must read their raw body for the
signature, decode it with the same ``loads`` (``services.webhooks.inbound.service``). Every refusal is an
``InputRefused`` naming where the bad input was (``loc``, as pydantic names it) and what it was (``type``):

- ``json_invalid``: not JSON (or not UTF-8);
- ``json_too_deep``: arrays and objects nested deeper than ``MAX_DEPTH``;
- ``number_out_of_range``: ``NaN``, ``Infinity``, a float that overflows (``1e309``), an integer outside
  64 bits (PostgreSQL's ``bigint``; nothing we store is larger);
- ``control_character``: a control character (Unicode Cc: C0, DEL, C1) or a lone surrogate half in a
  string or an object key. Tabs and line breaks are allowed only in the values of ``MULTILINE_FIELDS``.

This module imports nothing of the platform, so every package can use it.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

# Free text a person writes in several lines. Everything else (names, slugs, part numbers, keys, ids,
# addresses) is one line: a tab or a line break in it is a forged log line or a broken label.
MULTILINE_FIELDS = frozenset({"description", "reason", "notes", "message", "note"})
# Deeper than any body we take (a site's printers' profiles are 4 levels), far below the recursion limit.
MAX_DEPTH = 32
_INT_RANGE = range(-(2**63), 2**63)

# Unicode category Cc, and surrogate halves (which a JSON \ud800 escape produces and no encoder accepts).
_FORBIDDEN = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff"
_CONTROL = re.compile(f"[{_FORBIDDEN}\t\n\r]")
_CONTROL_BUT_LINE_BREAKS = re.compile(f"[{_FORBIDDEN}]")
# The same rules as JSON Schema (ECMA-262) patterns, for the OpenAPI document: what the edge refuses is
# what the document says it refuses, so clients and the fuzzer are told the truth.
SINGLE_LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
MULTILINE_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"

Loc = tuple[str | int, ...]


class InputRefused(ValueError):
    def __init__(self, loc: Loc, kind: str, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.kind = kind
        self.message = message

    def detail(self) -> dict[str, Any]:
        """One entry of a ``validation_error``'s details, as ``services.api.errors`` renders pydantic's."""
        return {"loc": list(self.loc), "message": self.message, "type": self.kind}


def check_text(value: str, loc: Loc, *, multiline: bool = False) -> None:
    """Refuse ``value`` if it holds a control character (tabs and line breaks too, unless ``multiline``)."""
    found = (_CONTROL_BUT_LINE_BREAKS if multiline else _CONTROL).search(value)
    if found is not None:
        raise InputRefused(
            loc,
            "control_character",
            f"control character U+{ord(found.group()):04X} at position {found.start()}",
        )


def _no_constant(name: str) -> Any:
    raise InputRefused((), "number_out_of_range", f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise InputRefused((), "number_out_of_range", f"{text[:40]} is out of range")
    return number


def _bounded(text: str) -> int:
    # Checked on the digits before int() runs: a 100,000-digit integer costs int() quadratic time.
    if len(text.lstrip("-")) > 19 or int(text) not in _INT_RANGE:
        raise InputRefused((), "number_out_of_range", f"{text[:40]} is outside 64-bit integers")
    return int(text)


def loads(body: bytes | str, *, loc: Loc = ("body",)) -> Any:
    """Decode a JSON document under the rules above.

    Raises:
        InputRefused: the document breaks one of them; ``loc`` starts with the given prefix.
    """
    try:
        value = json.loads(body, parse_constant=_no_constant, parse_float=_finite, parse_int=_bounded)
    except InputRefused as exc:
        raise InputRefused(loc, exc.kind, exc.message) from None
    except RecursionError:
        raise InputRefused(loc, "json_too_deep", f"nested deeper than {MAX_DEPTH} levels") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputRefused(loc, "json_invalid", f"not JSON: {exc}") from None
    _check_tree(value, loc)
    return value


def _check_tree(root: Any, loc: Loc) -> None:
    # Iterative: the depth limit is what this enforces, so it must not recurse itself.
    stack: list[tuple[Any, Loc, bool]] = [(root, loc, False)]
    while stack:
        value, where, multiline = stack.pop()
        if len(where) - len(loc) > MAX_DEPTH:
            raise InputRefused(loc, "json_too_deep", f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, str):
            check_text(value, where, multiline=multiline)
        elif isinstance(value, dict):
            for key, item in value.items():
                check_text(key, (*where, key))
                stack.append((item, (*where, key), key in MULTILINE_FIELDS))
        elif isinstance(value, list):
            stack.extend((item, (*where, index), multiline) for index, item in enumerate(value))


def to_utc(value: datetime) -> datetime:
    """``value`` (aware) in UTC.

    Raises:
        ValueError: no UTC datetime can hold it (9999-12-31T23:59:59-05:00). datetime raises OverflowError,
            which pydantic does not take for a validation error: it would surface wherever the value is
            first converted, as a 500.
    """
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range when converted to UTC") from None


def written(value: Any) -> Any:
    """Refuse a number where a datetime is due: pydantic would take it for unix seconds, which the document
    (``format: date-time``, a string with an offset) does not allow."""
    if isinstance(value, int | float):
        raise ValueError("a datetime is a string with an offset (RFC 3339), not a number")
    return value


UtcDatetime = Annotated[AwareDatetime, BeforeValidator(written), AfterValidator(to_utc)]
"""Every datetime a request carries: written with an offset, converted to UTC on the way in."""
