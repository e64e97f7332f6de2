"""A postal address: where an order is delivered, and where a site's parcels are picked up."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.validation import SINGLE_LINE_PATTERN

Line = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=SINGLE_LINE_PATTERN)]


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: list[Line] = Field(min_length=1, max_length=4)
    city: Line
    postal_code: Annotated[str, StringConstraints(max_length=20, pattern=r"^[A-Za-z0-9 -]*$")] = ""
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = Field(
        description="ISO 3166-1 alpha-2 code, e.g. DE"
    )
