"""Microfactory registry: where a site is, when it works, how it ships; its printers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("site") as batch:
        batch.add_column(sa.Column("latitude", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("longitude", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"))
        batch.add_column(sa.Column("opening_hours", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("courier_cutoffs", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("transit", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("post_processing_minutes", sa.Integer(), nullable=False, server_default="30"))
        # Existing sites have no location yet: offline until an operator describes them.
        batch.add_column(sa.Column("status", sa.String(32), nullable=False, server_default="offline"))
        batch.add_column(sa.Column("qualified_revisions", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE site SET updated_at = created_at")
    with op.batch_alter_table("site") as batch:
        batch.alter_column("updated_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        for column in ("latitude", "longitude", "timezone", "opening_hours", "courier_cutoffs", "transit",
                       "post_processing_minutes", "status"):  # fmt: skip
            batch.alter_column(column, server_default=None)
    op.create_index("ix_site_status", "site", ["status"])

    op.create_table(
        "printer",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("site_id", sa.Uuid(), sa.ForeignKey("site.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("key", sa.String(40), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("process", sa.String(32), nullable=False),
        sa.Column("build_x_mm", sa.Float(), nullable=False),
        sa.Column("build_y_mm", sa.Float(), nullable=False),
        sa.Column("build_z_mm", sa.Float(), nullable=False),
        sa.Column("nozzle_mm", sa.Float(), nullable=False),
        sa.Column("materials_supported", sa.JSON(), nullable=False),
        sa.Column("materials_loaded", sa.JSON(), nullable=False),
        sa.Column("profile", sa.JSON(), nullable=False),
        sa.Column("slicer", sa.String(32), nullable=False),
        sa.UniqueConstraint("site_id", "key", name="uq_printer_site_key"),
    )


def downgrade() -> None:
    op.drop_table("printer")
    op.drop_index("ix_site_status", "site")
    with op.batch_alter_table("site") as batch:
        for column in ("updated_at", "qualified_revisions", "status", "post_processing_minutes", "transit",
                       "courier_cutoffs", "opening_hours", "timezone", "longitude", "latitude"):  # fmt: skip
            batch.drop_column(column)
