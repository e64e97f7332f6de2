"""Catalog, accounts and API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Migrations use plain column types so that they keep meaning the same when the models change.
_WHEN = sa.DateTime(timezone=True)


def _account_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("slug", sa.String(40), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
    )


def upgrade() -> None:
    for name in ("organization", "site", "partner"):
        _account_table(name)

    op.create_table(
        "api_key",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("key_id", sa.String(24), nullable=False, unique=True),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("organization_id", sa.Uuid(), sa.ForeignKey("organization.id"), nullable=True, index=True),
        sa.Column("site_id", sa.Uuid(), sa.ForeignKey("site.id"), nullable=True, index=True),
        sa.Column("partner_id", sa.Uuid(), sa.ForeignKey("partner.id"), nullable=True, index=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("revoked_at", _WHEN, nullable=True),
    )

    op.create_table(
        "part",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("organization_id", sa.Uuid(), sa.ForeignKey("organization.id"), nullable=False, index=True),
        sa.Column("part_number", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.String(4000), nullable=False),
        sa.Column("process", sa.String(32), nullable=False),
        sa.Column("materials", sa.JSON(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.UniqueConstraint("organization_id", "part_number", name="uq_part_org_number"),
    )
    # Listing orders by part number (keyset pagination); searches match its lower-cased prefix.
    op.create_index("ix_part_number", "part", ["part_number"])

    op.create_table(
        "part_equipment",
        sa.Column("part_id", sa.Uuid(), sa.ForeignKey("part.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("equipment_model", sa.String(120), primary_key=True),
    )
    # Search by equipment model compares lower-cased values.
    op.create_index("ix_part_equipment_model_lower", "part_equipment", [sa.text("lower(equipment_model)")])

    op.create_table(
        "part_revision",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "part_id", sa.Uuid(), sa.ForeignKey("part.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("blob_sha256", sa.String(64), nullable=False, index=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("format_warnings", sa.JSON(), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("note", sa.String(1000), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("geometry_report", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.UniqueConstraint("part_id", "number", name="uq_part_revision_number"),
    )


def downgrade() -> None:
    for name in ("part_revision", "part_equipment", "part", "api_key", "partner", "site", "organization"):
        op.drop_table(name)
