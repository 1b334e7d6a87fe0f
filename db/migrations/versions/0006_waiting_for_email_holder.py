"""`webhook_events.waiting_for`: the user a `waiting` event waits for.

An event whose email address another stored user still holds is `waiting` (an ordering
problem: a re-created account, two users exchanging addresses), not `failed`. This column names
the holder's Clerk id, so the event is released when that holder changes or is deleted. NULL
for every other event (a session waiting for its own user waits on `clerk_user_id`).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("webhook_events", sa.Column("waiting_for", sa.String(length=255), nullable=True))


def downgrade() -> None:
    op.drop_column("webhook_events", "waiting_for")
