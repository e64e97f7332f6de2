"""The one shape of a paginated list on the wire: a page of items and the cursor of the next page."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list. Ask again with ``cursor=next_cursor`` until ``next_cursor`` is null."""

    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page (older items, in a list that is newest first); "
        "null on the last page."
    )
