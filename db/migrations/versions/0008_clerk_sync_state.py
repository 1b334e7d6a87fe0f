"""`clerk_sync_state`: the cursor, watermark and last success of each Clerk convergence job.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clerk_sync_state",
        sa.Column("job", sa.String(length=50), nullable=False),
        sa.Column("cursor", sa.String(length=255), nullable=True),
        sa.Column("watermark_ms", sa.BigInteger(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_counts", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("job", name=op.f("clerk_sync_state_pkey")),
    )


def downgrade() -> None:
    op.drop_table("clerk_sync_state")
