"""Geometry pipeline: revision check state, print jobs and the slice cache.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("part_revision") as batch:
        batch.add_column(sa.Column("declared_unit", sa.String(16), nullable=True))
        batch.add_column(sa.Column("status_changed_at", _WHEN, nullable=True))
        batch.add_column(sa.Column("check_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("repaired_blob_sha256", sa.String(64), nullable=True))
    op.execute("UPDATE part_revision SET status_changed_at = created_at")
    with op.batch_alter_table("part_revision") as batch:
        batch.alter_column("status_changed_at", existing_type=_WHEN, nullable=False)
        batch.alter_column("check_attempts", existing_type=sa.Integer(), server_default=None)
    # The reconciler looks for revisions still waiting for their check.
    op.create_index("ix_part_revision_status", "part_revision", ["status"])

    op.create_table(
        "slice_artifact",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("preparation_digest", sa.String(64), nullable=False),
        sa.Column("slicer", sa.String(32), nullable=False),
        sa.Column("slicer_version", sa.String(64), nullable=False),
        sa.Column("gcode_sha256", sa.String(64), nullable=False, index=True),
        sa.Column("gcode_bytes", sa.BigInteger(), nullable=False),
        sa.Column("print_seconds", sa.Float(), nullable=False),
        sa.Column("filament_mm3", sa.Float(), nullable=False),
        sa.Column("filament_g", sa.Float(), nullable=False),
        sa.Column("layer_count", sa.Integer(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("orientation", sa.JSON(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.UniqueConstraint(
            "model_sha256", "preparation_digest", "slicer", "slicer_version", name="uq_slice_artifact_key"
        ),
    )

    op.create_table(
        "print_job",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("revision_id", sa.Uuid(), sa.ForeignKey("part_revision.id"), nullable=False, index=True),
        sa.Column("printer", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False, index=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("slice_artifact_id", sa.Uuid(), sa.ForeignKey("slice_artifact.id"), nullable=True),
        sa.Column("orientation", sa.JSON(), nullable=True),
        sa.Column("failure_code", sa.String(64), nullable=True),
        sa.Column("failure_message", sa.String(4000), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("print_job")
    op.drop_table("slice_artifact")
    op.drop_index("ix_part_revision_status", "part_revision")
    with op.batch_alter_table("part_revision") as batch:
        for column in ("repaired_blob_sha256", "check_attempts", "status_changed_at", "declared_unit"):
            batch.drop_column(column)
