"""Inbound webhooks keep the tracking update as it was read on receipt, count their attempts and can be
parked with their last error for an operator.

Events stored before this revision have no stored tracking update; the worker reads their payload as it did.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_webhook") as batch:
        batch.add_column(sa.Column("tracking", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_error", sa.String(500), nullable=True))


def downgrade() -> None:
    # 0007 has no state for a parked event: as received, it would be retried for ever again. It is kept as
    # ignored, with its last error as the outcome, until the deduplication window purges it.
    op.execute(
        "UPDATE inbound_webhook SET status = 'ignored', outcome = substr(last_error, 1, 200) "
        "WHERE status = 'parked'"
    )
    with op.batch_alter_table("inbound_webhook") as batch:
        batch.drop_column("last_error")
        batch.drop_column("attempts")
        batch.drop_column("tracking")
