"""Session-data migrations complete at most once per `(clerk_id, session_data_id)`.

An addition to the seed's `data_migrations` table: a unique partial index over the completed
`session_to_user` rows. Two deliveries of the same onboarding data that run at the same time
(a webhook redelivery and an operator's import, say) cannot both complete: the second insert
waits for the first transaction and then fails on this index, and its writes are rolled back.
Failed and rolled-back rows stay outside the index (a failed attempt may be retried).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

INDEX = "idx_data_migrations_completed_session"
PREDICATE = "migration_type = 'session_to_user' AND status = 'completed'"


def upgrade() -> None:
    op.create_index(
        INDEX,
        "data_migrations",
        ["clerk_id", "session_data_id"],
        unique=True,
        postgresql_where=sa.text(PREDICATE),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="data_migrations")
