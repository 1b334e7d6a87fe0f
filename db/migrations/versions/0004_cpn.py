"""CPN results: share tokens and a per-user change stamp for the dirty scan.

Additions to the seed schema (each also listed in the schema parity test's allowed differences):

- `user_cpn_results.share_token` (text, NULL for rows written before this revision) with the
  unique index `idx_user_cpn_results_share_token`: the unguessable key of the share page
  (`secrets.token_urlsafe(32)`, 256 bits). `shareable_graphic_url` is built from it.
- The index `idx_user_cpn_results_user_latest (user_id, id)`: a recompute reads each user's
  latest row with one probe, however long the history grows.
- Three statement-level triggers on `user_interactions`
  (`cpn_interactions_changed_on_insert`, `..._on_update`, `..._on_delete`) running the function
  `cpn_stamp_interaction_changes()`: the app writes interactions directly, so the database itself
  records which users changed. Statement-level with transition tables, so a bulk load of a
  million rows costs one set-based upsert, not a million.

The service's own objects (not seed tables):

- `user_interaction_changes(user_id PK -> users ON DELETE CASCADE, change_id identity,
  changed_at)`: one row per user whose interactions changed since a recompute saw them; each
  new stamp takes the next `change_id`. A recompute deletes the rows it consumed, comparing
  `change_id`, so a change committed during the recompute stays pending. Every user who already
  has interactions is stamped here, so the first dirty scan computes everyone.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_STAMP_FUNCTION = """
CREATE FUNCTION cpn_stamp_interaction_changes() RETURNS trigger
LANGUAGE plpgsql
-- Pinned at creation: a restore (pg_dump sets an empty search_path) fires this trigger too.
SET search_path FROM CURRENT
AS $$
DECLARE
    changed integer[];
BEGIN
    -- Each trigger has only the transition tables of its own event.
    IF TG_OP = 'INSERT' THEN
        changed := ARRAY(SELECT DISTINCT user_id FROM new_rows);
    ELSIF TG_OP = 'UPDATE' THEN
        changed := ARRAY(SELECT user_id FROM new_rows UNION SELECT user_id FROM old_rows);
    ELSE
        changed := ARRAY(SELECT DISTINCT user_id FROM old_rows);
    END IF;
    -- The join skips a user deleted in this transaction (the ON DELETE CASCADE of users); the
    -- order keeps concurrent bulk writes from deadlocking on the stamps.
    INSERT INTO user_interaction_changes (user_id)
    SELECT u.id FROM users u JOIN unnest(changed) AS c(user_id) ON u.id = c.user_id
    ORDER BY u.id
    ON CONFLICT (user_id) DO UPDATE
        SET change_id = DEFAULT, changed_at = now();
    RETURN NULL;
END
$$
"""

# PostgreSQL allows transition tables only on single-event triggers: one trigger per event.
_TRIGGERS = {
    "cpn_interactions_changed_on_insert": ("INSERT", "NEW TABLE AS new_rows"),
    "cpn_interactions_changed_on_update": ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    "cpn_interactions_changed_on_delete": ("DELETE", "OLD TABLE AS old_rows"),
}


def upgrade() -> None:
    op.add_column("user_cpn_results", sa.Column("share_token", sa.Text(), nullable=True))
    op.create_index(
        "idx_user_cpn_results_share_token", "user_cpn_results", ["share_token"], unique=True
    )
    op.create_index(
        "idx_user_cpn_results_user_latest", "user_cpn_results", ["user_id", "id"], unique=False
    )

    op.create_table(
        "user_interaction_changes",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("user_interaction_changes_user_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("user_interaction_changes_pkey")),
    )
    op.execute(_STAMP_FUNCTION)
    for name, (event, referencing) in _TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON user_interactions "
            f"REFERENCING {referencing} FOR EACH STATEMENT "
            "EXECUTE FUNCTION cpn_stamp_interaction_changes()"
        )
    op.execute(
        "INSERT INTO user_interaction_changes (user_id) "
        "SELECT DISTINCT user_id FROM user_interactions ORDER BY user_id"
    )


def downgrade() -> None:
    for name in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON user_interactions")
    op.execute("DROP FUNCTION cpn_stamp_interaction_changes()")
    op.drop_table("user_interaction_changes")
    op.drop_index("idx_user_cpn_results_user_latest", table_name="user_cpn_results")
    op.drop_index("idx_user_cpn_results_share_token", table_name="user_cpn_results")
    op.drop_column("user_cpn_results", "share_token")
