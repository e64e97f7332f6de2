"""The built-in courier counts the unacknowledged sends of each parcel's next event and parks a parcel,
with its last error, when our API refuses the event for good or ``max_job_attempts`` sends fail.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("local_courier_parcel") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_error", sa.String(500), nullable=True))
        batch.add_column(sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_local_courier_parcel_parked_at", ["parked_at"])


def downgrade() -> None:
    # 0008 has no parked parcel: each is due again now, and resent on every drive as before.
    op.execute("UPDATE local_courier_parcel SET next_due_at = parked_at WHERE parked_at IS NOT NULL")
    with op.batch_alter_table("local_courier_parcel") as batch:
        batch.drop_index("ix_local_courier_parcel_parked_at")
        batch.drop_column("parked_at")
        batch.drop_column("last_error")
        batch.drop_column("attempts")
