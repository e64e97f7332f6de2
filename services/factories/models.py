"""Microfactory sites. A site is also an account: its factory keys belong to it."""

from __future__ import annotations

from services.accounts.models import NamedAccount


class Site(NamedAccount, table=True):
    __tablename__ = "site"
