"""`me_sync_requests`: the first-request sync calls (`POST /api/me/sync`, DESIGN.md section 10).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "me_sync_requests",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("clerk_id", sa.String(length=255), nullable=False),
        sa.Column("session_data_id", sa.String(length=255), nullable=False),
        sa.Column("onboarding", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("requested", sa.Integer(), server_default="1", nullable=False),
        sa.Column("applied", sa.Integer(), server_default="0", nullable=False),
        sa.Column("completed_by", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("onboarding_status", sa.String(length=20), nullable=True),
        sa.Column("errors", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "requested_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("me_sync_requests_pkey")),
        sa.UniqueConstraint("clerk_id", "session_data_id", name="unique_me_sync_request"),
    )


def downgrade() -> None:
    op.drop_table("me_sync_requests")
