"""The inbox, `webhook_events`: every verified Clerk delivery, unique on its svix id.

Columns are the ones DESIGN.md section 2 makes part of the contract, plus `occurred_at` (the
envelope's timestamp) and `redacted_at` (set when the payload is erased for retention or privacy).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("svix_id", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("clerk_user_id", sa.String(length=255), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "status", sa.String(length=20), server_default=sa.text("'received'"), nullable=False
        ),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("redacted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('received', 'processing', 'processed', 'ignored', 'waiting', 'failed')",
            name=op.f("valid_webhook_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("webhook_events_pkey")),
        sa.UniqueConstraint("svix_id", name="unique_webhook_svix_id"),
    )
    op.create_index(
        "idx_webhook_events_clerk_user_id", "webhook_events", ["clerk_user_id"], unique=False
    )
    op.create_index(
        "idx_webhook_events_status_received",
        "webhook_events",
        ["status", "received_at"],
        unique=False,
    )
    op.create_index("idx_webhook_events_type", "webhook_events", ["event_type"], unique=False)


def downgrade() -> None:
    op.drop_index("idx_webhook_events_type", table_name="webhook_events")
    op.drop_index("idx_webhook_events_status_received", table_name="webhook_events")
    op.drop_index("idx_webhook_events_clerk_user_id", table_name="webhook_events")
    op.drop_table("webhook_events")
