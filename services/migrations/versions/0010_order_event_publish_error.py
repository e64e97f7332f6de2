"""An order event the outbound-webhook publisher cannot render keeps the error, and is sent nowhere.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("order_event") as batch:
        batch.add_column(sa.Column("publish_error", sa.String(500), nullable=True))


def downgrade() -> None:
    # Such events stay stamped published: in 0009 they would fail their batch on every run again.
    with op.batch_alter_table("order_event") as batch:
        batch.drop_column("publish_error")
