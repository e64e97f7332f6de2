"""Shipping: shipments and their tracking events, the built-in courier's parcels, partners' webhook secrets,
inbound webhooks kept for deduplication; orders can need attention; sites get an address and a courier.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("needs_attention", sa.String(64), nullable=True))
        batch.create_index("ix_orders_needs_attention", ["needs_attention"])
    with op.batch_alter_table("site") as batch:
        batch.add_column(sa.Column("address", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("courier", sa.String(40), nullable=False, server_default="local"))
    op.create_table(
        "shipment",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("order_id", sa.Uuid(), sa.ForeignKey("orders.id"), nullable=False, index=True),
        sa.Column("site_id", sa.Uuid(), sa.ForeignKey("site.id"), nullable=False),
        sa.Column("courier", sa.String(40), nullable=False),
        sa.Column("status", sa.String(32), nullable=False, index=True),
        sa.Column("tracking_status", sa.String(32), nullable=False),
        sa.Column("idempotency_key", sa.String(80), nullable=False, unique=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("attention_reason", sa.String(64), nullable=True),
        sa.Column("parcel", sa.JSON(), nullable=False),
        sa.Column("service", sa.String(64), nullable=True),
        sa.Column("tracking_number", sa.String(100), nullable=True),
        sa.Column("courier_shipment_id", sa.String(100), nullable=True),
        sa.Column("label_pdf", sa.LargeBinary(), nullable=True),
        sa.Column("pickup_from", _TS, nullable=True),
        sa.Column("pickup_until", _TS, nullable=True),
        sa.Column("estimated_delivery_at", _TS, nullable=True),
        sa.Column("booked_at", _TS, nullable=True),
        sa.Column("picked_up_at", _TS, nullable=True),
        sa.Column("delivered_at", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("courier", "tracking_number", name="uq_shipment_tracking"),
    )
    op.create_table(
        "shipment_event",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "shipment_id",
            sa.Uuid(),
            sa.ForeignKey("shipment.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("occurred_at", _TS, nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("location", sa.String(200), nullable=False),
        sa.Column("courier_code", sa.String(64), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.UniqueConstraint("shipment_id", "status", "occurred_at", name="uq_shipment_event"),
    )
    op.create_table(
        "local_courier_parcel",
        sa.Column("tracking_number", sa.String(32), primary_key=True),
        sa.Column("idempotency_key", sa.String(80), nullable=False, unique=True),
        sa.Column("reference", sa.String(100), nullable=False),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("origin", sa.JSON(), nullable=False),
        sa.Column("destination", sa.JSON(), nullable=False),
        sa.Column("parcel", sa.JSON(), nullable=False),
        sa.Column("booked_at", _TS, nullable=False),
        sa.Column("pickup_from", _TS, nullable=False),
        sa.Column("pickup_until", _TS, nullable=False),
        sa.Column("estimated_delivery_at", _TS, nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("reported", sa.Integer(), nullable=False),
        sa.Column("next_due_at", _TS, nullable=True, index=True),
        sa.Column("cancelled_at", _TS, nullable=True),
    )
    op.create_table(
        "partner_secret",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "partner_id", sa.Uuid(), sa.ForeignKey("partner.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=True),
    )
    op.create_table(
        "inbound_webhook",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False, index=True),
        sa.Column("outcome", sa.String(200), nullable=True),
        sa.Column("received_at", _TS, nullable=False, index=True),
        sa.Column("processed_at", _TS, nullable=True),
        sa.UniqueConstraint("source", "event_id", name="uq_inbound_webhook_event"),
    )


def downgrade() -> None:
    for table in ("inbound_webhook", "partner_secret", "local_courier_parcel", "shipment_event", "shipment"):
        op.drop_table(table)
    with op.batch_alter_table("site") as batch:
        batch.drop_column("courier")
        batch.drop_column("address")
    with op.batch_alter_table("orders") as batch:
        batch.drop_index("ix_orders_needs_attention")
        batch.drop_column("needs_attention")
