"""The seed's six tables, as the seed document defines them.

Deliberate differences from the seed's SQL, each named in tests/db/test_schema_parity.py:

- Redundant indexes are not created twice. The seed asks for `users.clerk_id` to be a column
  UNIQUE, a named UNIQUE (`unique_clerk_id`) and a plain index (`idx_users_clerk_id`): three
  indexes on one column, of which PostgreSQL itself already folds the two UNIQUEs into one.
  Likewise `email` (`unique_email`, `idx_users_email`) and `user_profiles.user_id`
  (`unique_user_profile`, `idx_user_profiles_user_id`). Each column keeps the one unique index
  under the seed's constraint name; the plain `idx_*` index beside it is not created.
- The anonymous column CHECKs that repeat a named one (`age`, `rating`, `cost`, `time_minutes`,
  `nuts`) exist once, under the seed's name (`valid_age`, ...), as the seed's Drizzle block has
  them.
- `user_sessions.session_id` is unique (`idx_user_sessions_session_id` becomes a UNIQUE index):
  sessions are upserted by their Clerk id.
- `data_migrations.user_id` references `users(id)` with ON DELETE SET NULL, so deleting a user
  does not fail on its migration history (the user.deleted handler erases those rows itself).

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clerk_id", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("email_verified", sa.Boolean(), server_default=sa.text("false"), nullable=True),
        sa.Column("first_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=True),
        sa.Column("image_url", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True
        ),
        sa.Column("last_sign_in_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("users_pkey")),
        sa.UniqueConstraint("clerk_id", name="unique_clerk_id"),
        sa.UniqueConstraint("email", name="unique_email"),
    )
    op.create_index("idx_users_created_at", "users", ["created_at"], unique=False)
    op.create_table(
        "data_migrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("migration_name", sa.String(length=255), nullable=False),
        sa.Column("session_data_id", sa.String(length=255), nullable=True),
        sa.Column("clerk_id", sa.String(length=255), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("migration_type", sa.String(length=50), nullable=False),
        sa.Column("original_data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("migrated_data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "status", sa.String(length=20), server_default=sa.text("'pending'"), nullable=True
        ),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column(
            "started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rolled_back_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'completed', 'failed', 'rolled_back')",
            name=op.f("valid_migration_status"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("data_migrations_user_id_fkey"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("data_migrations_pkey")),
    )
    op.create_index("idx_data_migrations_clerk_id", "data_migrations", ["clerk_id"], unique=False)
    op.create_index("idx_data_migrations_status", "data_migrations", ["status"], unique=False)
    op.create_index("idx_data_migrations_type", "data_migrations", ["migration_type"], unique=False)
    op.create_table(
        "user_cpn_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("clerk_id", sa.String(length=255), nullable=False),
        sa.Column("total_interactions", sa.Integer(), server_default=sa.text("0"), nullable=True),
        sa.Column(
            "total_cost",
            sa.Numeric(precision=12, scale=2),
            server_default=sa.text("0"),
            nullable=True,
        ),
        sa.Column(
            "total_time_hours",
            sa.Numeric(precision=8, scale=2),
            server_default=sa.text("0"),
            nullable=True,
        ),
        sa.Column("total_nuts", sa.Integer(), server_default=sa.text("0"), nullable=True),
        sa.Column("average_cost_per_nut", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("average_cost_per_hour", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("average_nuts_per_hour", sa.Numeric(precision=6, scale=3), nullable=True),
        sa.Column("overall_efficiency_score", sa.Numeric(precision=5, scale=3), nullable=True),
        sa.Column("calculation_period_start", sa.Date(), nullable=True),
        sa.Column("calculation_period_end", sa.Date(), nullable=True),
        sa.Column("recommendations", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("shareable_graphic_url", sa.Text(), nullable=True),
        sa.Column(
            "calculated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=True,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True
        ),
        sa.CheckConstraint(
            "total_interactions >= 0 AND total_cost >= 0 AND total_time_hours >= 0 "
            "AND total_nuts >= 0",
            name=op.f("valid_totals"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("user_cpn_results_user_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("user_cpn_results_pkey")),
    )
    op.create_index(
        "idx_user_cpn_results_calculated_at", "user_cpn_results", ["calculated_at"], unique=False
    )
    op.create_index("idx_user_cpn_results_clerk_id", "user_cpn_results", ["clerk_id"], unique=False)
    op.create_index("idx_user_cpn_results_user_id", "user_cpn_results", ["user_id"], unique=False)
    op.create_table(
        "user_interactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("clerk_id", sa.String(length=255), nullable=False),
        sa.Column("interaction_date", sa.Date(), nullable=False),
        sa.Column("cost", sa.Numeric(precision=10, scale=2), nullable=False),
        sa.Column("time_minutes", sa.Integer(), nullable=False),
        sa.Column("nuts", sa.Integer(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column(
            "cost_per_nut",
            sa.Numeric(precision=10, scale=2),
            sa.Computed("CASE WHEN nuts > 0 THEN cost / nuts ELSE cost END", persisted=True),
            nullable=True,
        ),
        sa.Column(
            "cost_per_hour",
            sa.Numeric(precision=10, scale=2),
            sa.Computed("cost / (time_minutes::DECIMAL / 60)", persisted=True),
            nullable=True,
        ),
        sa.Column(
            "nuts_per_hour",
            sa.Numeric(precision=6, scale=3),
            sa.Computed("nuts::DECIMAL / (time_minutes::DECIMAL / 60)", persisted=True),
            nullable=True,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True
        ),
        sa.CheckConstraint("cost >= 0", name=op.f("valid_cost")),
        sa.CheckConstraint("interaction_date <= CURRENT_DATE", name=op.f("valid_interaction_date")),
        sa.CheckConstraint("nuts >= 0 AND nuts <= 5", name=op.f("valid_nuts")),
        sa.CheckConstraint("time_minutes >= 15 AND time_minutes <= 1440", name=op.f("valid_time")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("user_interactions_user_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("user_interactions_pkey")),
    )
    op.create_index(
        "idx_user_interactions_clerk_id", "user_interactions", ["clerk_id"], unique=False
    )
    op.create_index(
        "idx_user_interactions_created_at", "user_interactions", ["created_at"], unique=False
    )
    op.create_index(
        "idx_user_interactions_date", "user_interactions", ["interaction_date"], unique=False
    )
    op.create_index("idx_user_interactions_user_id", "user_interactions", ["user_id"], unique=False)
    op.create_table(
        "user_profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("clerk_id", sa.String(length=255), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("age", sa.Integer(), nullable=True),
        sa.Column("ethnicity", sa.String(length=50), nullable=True),
        sa.Column("rating", sa.Numeric(precision=3, scale=1), nullable=True),
        sa.Column(
            "completed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=True,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True
        ),
        sa.CheckConstraint("age >= 18 AND age <= 99", name=op.f("valid_age")),
        sa.CheckConstraint("rating >= 0 AND rating <= 10", name=op.f("valid_rating")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("user_profiles_user_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("user_profiles_pkey")),
        sa.UniqueConstraint("user_id", name="unique_user_profile"),
    )
    op.create_index("idx_user_profiles_clerk_id", "user_profiles", ["clerk_id"], unique=False)
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("clerk_id", sa.String(length=255), nullable=False),
        sa.Column("session_id", sa.String(length=255), nullable=False),
        sa.Column("ip_address", postgresql.INET(), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("device_type", sa.String(length=50), nullable=True),
        sa.Column("browser", sa.String(length=50), nullable=True),
        sa.Column("location_country", sa.String(length=2), nullable=True),
        sa.Column("location_city", sa.String(length=100), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True
        ),
        sa.Column(
            "last_active_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=True,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=True),
        sa.CheckConstraint(
            "created_at <= last_active_at AND (ended_at IS NULL OR last_active_at <= ended_at) "
            "AND (expires_at IS NULL OR created_at <= expires_at)",
            name=op.f("valid_session_times"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("user_sessions_user_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("user_sessions_pkey")),
    )
    op.create_index(
        "idx_user_sessions_active",
        "user_sessions",
        ["is_active"],
        unique=False,
        postgresql_where=sa.text("is_active = true"),
    )
    op.create_index("idx_user_sessions_clerk_id", "user_sessions", ["clerk_id"], unique=False)
    op.create_index(
        "idx_user_sessions_last_active", "user_sessions", ["last_active_at"], unique=False
    )
    op.create_index("idx_user_sessions_session_id", "user_sessions", ["session_id"], unique=True)
    op.create_index("idx_user_sessions_user_id", "user_sessions", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index("idx_user_sessions_user_id", table_name="user_sessions")
    op.drop_index("idx_user_sessions_session_id", table_name="user_sessions")
    op.drop_index("idx_user_sessions_last_active", table_name="user_sessions")
    op.drop_index("idx_user_sessions_clerk_id", table_name="user_sessions")
    op.drop_index(
        "idx_user_sessions_active",
        table_name="user_sessions",
        postgresql_where=sa.text("is_active = true"),
    )
    op.drop_table("user_sessions")
    op.drop_index("idx_user_profiles_clerk_id", table_name="user_profiles")
    op.drop_table("user_profiles")
    op.drop_index("idx_user_interactions_user_id", table_name="user_interactions")
    op.drop_index("idx_user_interactions_date", table_name="user_interactions")
    op.drop_index("idx_user_interactions_created_at", table_name="user_interactions")
    op.drop_index("idx_user_interactions_clerk_id", table_name="user_interactions")
    op.drop_table("user_interactions")
    op.drop_index("idx_user_cpn_results_user_id", table_name="user_cpn_results")
    op.drop_index("idx_user_cpn_results_clerk_id", table_name="user_cpn_results")
    op.drop_index("idx_user_cpn_results_calculated_at", table_name="user_cpn_results")
    op.drop_table("user_cpn_results")
    op.drop_index("idx_data_migrations_type", table_name="data_migrations")
    op.drop_index("idx_data_migrations_status", table_name="data_migrations")
    op.drop_index("idx_data_migrations_clerk_id", table_name="data_migrations")
    op.drop_table("data_migrations")
    op.drop_index("idx_users_created_at", table_name="users")
    op.drop_table("users")
