"""Validated inputs of the catalog: what a caller may say about a part, before it touches the database."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from parts_catalog.models import Process


def _printable(value: str) -> str:
    # NUL and other control characters break PostgreSQL text columns, logs and terminals alike.
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in value):
        raise ValueError("control characters are not allowed")
    return value


def _single_line(value: str) -> str:
    if "\n" in value or "\t" in value:
        raise ValueError("must be a single line")
    return value


# The JSON Schema of these strings states what the validators accept (so the OpenAPI document tells clients,
# and the API fuzzer, the truth); validation stays with the validators and their messages. pydantic strips
# whitespace first and then checks length, pattern and characters, so the schema is a pattern over the raw
# value: any whitespace, the stripped value, any whitespace; minLength and maxLength (of the raw value) go.
#
# Whitespace as strip_whitespace removes it, Unicode White_Space (Rust's str::trim), spelled out: a JSON
# Schema pattern is ECMA-262, whose \s lacks U+0085 and adds U+FEFF.
_SPACE = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Whitespace that may surround a value in a request: control characters are refused wherever they stand
# (services.validation, before any model sees them), whitespace or not; free text may keep its line breaks.
_AROUND_LINE = r" \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_AROUND_TEXT = r"\t\n\r" + _AROUND_LINE
_CONTROL = r"\x00-\x1f\x7f-\x9f"  # Unicode category Cc: _printable and _single_line refuse them all
_CONTROL_BUT_TAB_AND_NEWLINE = r"\x00-\x08\x0b-\x1f\x7f-\x9f"  # what _printable alone refuses


def _text(forbidden: str, max_length: int) -> str:
    """A stripped value of 1 to ``max_length`` characters without any of ``forbidden``: its first and last
    characters are not whitespace (or stripping would have removed them)."""
    edge = f"[^{_SPACE}{forbidden}]"
    return f"{edge}(?:[^{forbidden}]{{0,{max_length - 2}}}{edge})?"


def _stripped(stripped: str, *, around: str = _AROUND_LINE, optional: bool = False) -> Any:
    """``Field`` metadata: the value's JSON Schema is ``stripped`` (a regex; or nothing, when ``optional``)
    with whitespace from ``around`` around it."""
    core = f"(?:{stripped})?" if optional else stripped

    def schema(json_schema: dict[str, Any]) -> None:
        json_schema.pop("minLength", None)
        json_schema.pop("maxLength", None)
        json_schema["pattern"] = f"^[{around}]*{core}[{around}]*$"

    return Field(json_schema_extra=schema)


Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=4000),
    AfterValidator(_printable),
    _stripped(_text(_CONTROL_BUT_TAB_AND_NEWLINE, 4000), around=_AROUND_TEXT, optional=True),
]


PartNumber = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/\-]*$"
    ),
    _stripped(r"[A-Za-z0-9][A-Za-z0-9._/\-]{0,63}"),
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_printable),
    AfterValidator(_single_line),
    _stripped(_text(_CONTROL, 200)),
]
Material = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=40),
    AfterValidator(_printable),
    AfterValidator(_single_line),
    _stripped(_text(_CONTROL, 40)),
]
EquipmentModel = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=120),
    AfterValidator(_printable),
    AfterValidator(_single_line),
    _stripped(_text(_CONTROL, 120)),
]
# A search term: one line of words, no control characters (they would reach the database).
SearchText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=200),
    AfterValidator(_printable),
    AfterValidator(_single_line),
    _stripped(_text(_CONTROL, 200), optional=True),
]


class PartSpec(BaseModel):
    """Everything that describes a part; its models arrive separately as revisions."""

    model_config = ConfigDict(extra="forbid")

    part_number: PartNumber
    name: Name
    description: Text = ""
    process: Process
    materials: list[Material] = Field(min_length=1, max_length=20)
    equipment_models: list[EquipmentModel] = Field(default_factory=list, max_length=200)


class PartPatch(BaseModel):
    """A partial update; the part number is the part's identity and stays."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Text | None = None
    process: Process | None = None
    materials: list[Material] | None = Field(default=None, min_length=1, max_length=20)
    equipment_models: list[EquipmentModel] | None = Field(default=None, max_length=200)


# A free-text remark on an upload ("re-exported with fillets", ...).
RevisionNote = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=1000),
    AfterValidator(_printable),
    _stripped(_text(_CONTROL_BUT_TAB_AND_NEWLINE, 1000), around=_AROUND_TEXT, optional=True),
]
