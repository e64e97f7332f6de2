"""Print jobs gain a site, a printer and a lease; lease history; when sites were last seen.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Batch mode: SQLite adds foreign-key columns by rebuilding the table.
    with op.batch_alter_table("print_job") as batch:
        batch.add_column(sa.Column("site_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("printer_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("material", sa.String(40), nullable=True))
        batch.add_column(sa.Column("fence", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("lease_token", sa.String(100), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", _TS, nullable=True))
        batch.add_column(sa.Column("progress", sa.Float(), nullable=True))
        batch.add_column(sa.Column("printer_state", sa.String(32), nullable=True))
        batch.add_column(sa.Column("failures_here", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("completed_at", _TS, nullable=True))
        batch.add_column(sa.Column("completion", sa.JSON(), nullable=True))
        batch.create_foreign_key("fk_print_job_site_id", "site", ["site_id"], ["id"])
        batch.create_foreign_key(
            "fk_print_job_printer_id", "printer", ["printer_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_print_job_site_id", ["site_id"])
        batch.create_index("ix_print_job_lease_expires_at", ["lease_expires_at"])
    op.create_table(
        "print_job_lease",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "job_id",
            sa.Uuid(),
            sa.ForeignKey("print_job.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("fence", sa.BigInteger(), nullable=False),
        sa.Column("site_id", sa.Uuid(), sa.ForeignKey("site.id", ondelete="CASCADE"), nullable=False),
        sa.Column("claimed_by", sa.String(24), nullable=False),
        sa.Column("claimed_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.UniqueConstraint("job_id", "fence", name="uq_print_job_lease_fence"),
    )
    op.create_table(
        "site_presence",
        sa.Column("site_id", sa.Uuid(), sa.ForeignKey("site.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("last_seen_at", _TS, nullable=False),
        sa.Column("silenced_at", _TS, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("site_presence")
    op.drop_table("print_job_lease")
    with op.batch_alter_table("print_job") as batch:
        batch.drop_index("ix_print_job_lease_expires_at")
        batch.drop_index("ix_print_job_site_id")
        batch.drop_constraint("fk_print_job_printer_id", type_="foreignkey")
        batch.drop_constraint("fk_print_job_site_id", type_="foreignkey")
        for column in (
            "completion",
            "completed_at",
            "failures_here",
            "printer_state",
            "progress",
            "lease_expires_at",
            "lease_token",
            "fence",
            "material",
            "printer_id",
            "site_id",
        ):
            batch.drop_column(column)
