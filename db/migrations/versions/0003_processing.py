"""Event processing: user tombstones, scheduled-job ticks, and what the sweepers need.

- `deleted_users`: one row per Clerk user deleted upstream; a late `user.*` or `session.*`
  event for that id is not applied.
- `scheduled_job_runs`: when each beat job last started, so that two beat processes do not run
  one tick twice.
- `webhook_events.last_attempt_at`: when a worker last took the event; the sweeper re-enqueues
  rows left in `processing` by a lost worker.
- `idx_webhook_events_unredacted`: the retention job finds payloads still stored by age.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deleted_users",
        sa.Column("clerk_id", sa.String(length=255), nullable=False),
        sa.Column(
            "deleted_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("clerk_id", name=op.f("deleted_users_pkey")),
    )
    op.create_table(
        "scheduled_job_runs",
        sa.Column("job_name", sa.String(length=100), nullable=False),
        sa.Column("last_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_name", name=op.f("scheduled_job_runs_pkey")),
    )
    op.add_column(
        "webhook_events", sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "idx_webhook_events_unredacted",
        "webhook_events",
        ["received_at"],
        unique=False,
        postgresql_where=sa.text("payload IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "idx_webhook_events_unredacted",
        table_name="webhook_events",
        postgresql_where=sa.text("payload IS NOT NULL"),
    )
    op.drop_column("webhook_events", "last_attempt_at")
    op.drop_table("scheduled_job_runs")
    op.drop_table("deleted_users")
