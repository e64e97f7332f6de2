"""Validated inputs of the catalog: what a caller may say about a part, before it touches the database."""

from __future__ import annotations

import unicodedata
from typing import Annotated

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


Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000), AfterValidator(_printable)]


PartNumber = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/\-]*$"
    ),
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_printable),
    AfterValidator(_single_line),
]
Material = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=40),
    AfterValidator(_printable),
    AfterValidator(_single_line),
]
EquipmentModel = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=120),
    AfterValidator(_printable),
    AfterValidator(_single_line),
]
# A search term: free text, but still no control characters (they would reach the database).
SearchText = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(_printable)
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
    str, StringConstraints(strip_whitespace=True, max_length=1000), AfterValidator(_printable)
]
