"""Account tables. A key's secret is never stored, only its sha256."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints
from sqlmodel import Field, SQLModel

from parts_catalog.sqltypes import StrEnumType, UTCDateTime, utcnow

# People type slugs into commands and URLs: lowercase words joined by hyphens.
Slug = Annotated[
    str, StringConstraints(min_length=2, max_length=40, pattern=r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
]


class Role(StrEnum):
    ADMIN = "admin"  # operators: catalog, sites, keys, KPIs
    TECHNICIAN = "technician"  # belongs to an organization; orders parts for it
    FACTORY = "factory"  # belongs to a microfactory site; polls for print jobs
    PARTNER = "partner"  # a logistics partner; sends delivery webhooks


class NamedAccount(SQLModel):
    """Shape shared by organizations, sites and partners: a stable slug for people, a uuid for machines."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    slug: str = Field(max_length=40, unique=True)
    name: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Organization(NamedAccount, table=True):
    """A customer: owns parts and places orders through its technicians."""

    __tablename__ = "organization"


class Partner(NamedAccount, table=True):
    """A logistics partner that reports shipment progress."""

    __tablename__ = "partner"


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # The public half of the key, shown in listings and logs; the secret half is only hashed.
    key_id: str = Field(max_length=24, unique=True)
    secret_sha256: str = Field(max_length=64)
    role: Role = Field(sa_type=StrEnumType(Role))
    name: str = Field(default="", max_length=200)
    organization_id: uuid.UUID | None = Field(default=None, foreign_key="organization.id", index=True)
    site_id: uuid.UUID | None = Field(default=None, foreign_key="site.id", index=True)
    partner_id: uuid.UUID | None = Field(default=None, foreign_key="partner.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
