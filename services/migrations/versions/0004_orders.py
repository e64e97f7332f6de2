"""Orders, their events, printer reservations and idempotency keys.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("organization_id", sa.Uuid(), sa.ForeignKey("organization.id"), nullable=False, index=True),
        sa.Column("part_id", sa.Uuid(), sa.ForeignKey("part.id"), nullable=False),
        sa.Column("revision_id", sa.Uuid(), sa.ForeignKey("part_revision.id"), nullable=False),
        sa.Column("process", sa.String(32), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("materials", sa.JSON(), nullable=False),
        sa.Column("destination_lat", sa.Float(), nullable=False),
        sa.Column("destination_lon", sa.Float(), nullable=False),
        sa.Column("address", sa.JSON(), nullable=False),
        sa.Column("contact", sa.JSON(), nullable=False),
        sa.Column("sla", sa.String(8), nullable=True),
        sa.Column("need_by", _TS, nullable=False),
        sa.Column("accept_late", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False, index=True),
        sa.Column("site_id", sa.Uuid(), sa.ForeignKey("site.id"), nullable=True, index=True),
        sa.Column("printer_id", sa.Uuid(), sa.ForeignKey("printer.id", ondelete="SET NULL"), nullable=True),
        sa.Column("print_job_id", sa.Uuid(), sa.ForeignKey("print_job.id"), nullable=True, index=True),
        sa.Column("service_level", sa.String(32), nullable=True),
        sa.Column("promised_delivery_at", _TS, nullable=True),
        sa.Column("eta", _TS, nullable=True, index=True),
        sa.Column("routing", sa.JSON(), nullable=True),
        sa.Column("reroutes", sa.Integer(), nullable=False),
        sa.Column("failure_code", sa.String(64), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_table(
        "order_event",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "order_id", sa.Uuid(), sa.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("at", _TS, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(32), nullable=True),
        sa.Column("to_status", sa.String(32), nullable=True),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_table(
        "printer_reservation",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("printer_id", sa.Uuid(), sa.ForeignKey("printer.id", ondelete="CASCADE"), nullable=False),
        sa.Column("order_id", sa.Uuid(), sa.ForeignKey("orders.id"), nullable=False, index=True),
        sa.Column("start_at", _TS, nullable=False),
        sa.Column("end_at", _TS, nullable=False),
        sa.Column("released_at", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_printer_reservation_printer_end", "printer_reservation", ["printer_id", "end_at"])
    op.create_table(
        "idempotency_key",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.JSON(), nullable=True),
        sa.Column("locked_at", _TS, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False, index=True),
        sa.UniqueConstraint("owner", "key", name="uq_idempotency_owner_key"),
    )
    # Routing asks "has the registry changed?" for every order: max(updated_at) from an index is instant.
    op.create_index("ix_site_updated_at", "site", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_site_updated_at", "site")
    op.drop_table("idempotency_key")
    op.drop_index("ix_printer_reservation_printer_end", "printer_reservation")
    op.drop_table("printer_reservation")
    op.drop_table("order_event")
    op.drop_table("orders")
