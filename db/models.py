"""The seed's six tables, plus the service's own inbox (`webhook_events`).

Column types, lengths, defaults, CHECKs and index names follow the seed document exactly; the
deliberate differences are listed in the first migration's docstring and in the parity test.
Relationships refuse lazy loads: a query says what it joins.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.base import Base

TZ = DateTime(timezone=True)


def _now() -> Any:
    return mapped_column(TZ, server_default=func.now())


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("clerk_id", name="unique_clerk_id"),
        UniqueConstraint("email", name="unique_email"),
        Index("idx_users_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    clerk_id: Mapped[str] = mapped_column(String(255), nullable=False)
    email: Mapped[str] = mapped_column(String(255), nullable=False)
    email_verified: Mapped[bool | None] = mapped_column(Boolean, server_default=text("false"))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    image_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime | None] = _now()
    updated_at: Mapped[dt.datetime | None] = _now()
    last_sign_in_at: Mapped[dt.datetime | None] = mapped_column(TZ)

    profile: Mapped[UserProfile | None] = relationship(
        back_populates="user", lazy="raise", uselist=False, passive_deletes=True
    )


class UserProfile(Base):
    __tablename__ = "user_profiles"
    __table_args__ = (
        UniqueConstraint("user_id", name="unique_user_profile"),
        CheckConstraint("rating >= 0 AND rating <= 10", name="valid_rating"),
        CheckConstraint("age >= 18 AND age <= 99", name="valid_age"),
        Index("idx_user_profiles_clerk_id", "clerk_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    clerk_id: Mapped[str] = mapped_column(String(255), nullable=False)
    first_name: Mapped[str] = mapped_column(String(100), nullable=False)
    age: Mapped[int | None] = mapped_column(Integer)
    ethnicity: Mapped[str | None] = mapped_column(String(50))
    rating: Mapped[Decimal | None] = mapped_column(Numeric(3, 1))
    completed_at: Mapped[dt.datetime | None] = _now()
    created_at: Mapped[dt.datetime | None] = _now()
    updated_at: Mapped[dt.datetime | None] = _now()

    user: Mapped[User] = relationship(back_populates="profile", lazy="raise")


class UserInteraction(Base):
    __tablename__ = "user_interactions"
    __table_args__ = (
        CheckConstraint("cost >= 0", name="valid_cost"),
        CheckConstraint("time_minutes >= 15 AND time_minutes <= 1440", name="valid_time"),
        CheckConstraint("nuts >= 0 AND nuts <= 5", name="valid_nuts"),
        CheckConstraint("interaction_date <= CURRENT_DATE", name="valid_interaction_date"),
        Index("idx_user_interactions_user_id", "user_id"),
        Index("idx_user_interactions_clerk_id", "clerk_id"),
        Index("idx_user_interactions_date", "interaction_date"),
        Index("idx_user_interactions_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    clerk_id: Mapped[str] = mapped_column(String(255), nullable=False)
    interaction_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    cost: Mapped[Decimal] = mapped_column(Numeric(10, 2), nullable=False)
    time_minutes: Mapped[int] = mapped_column(Integer, nullable=False)
    nuts: Mapped[int] = mapped_column(Integer, nullable=False)
    notes: Mapped[str | None] = mapped_column(Text)
    cost_per_nut: Mapped[Decimal | None] = mapped_column(
        Numeric(10, 2),
        Computed("CASE WHEN nuts > 0 THEN cost / nuts ELSE cost END", persisted=True),
    )
    cost_per_hour: Mapped[Decimal | None] = mapped_column(
        Numeric(10, 2), Computed("cost / (time_minutes::DECIMAL / 60)", persisted=True)
    )
    nuts_per_hour: Mapped[Decimal | None] = mapped_column(
        Numeric(6, 3), Computed("nuts::DECIMAL / (time_minutes::DECIMAL / 60)", persisted=True)
    )
    created_at: Mapped[dt.datetime | None] = _now()
    updated_at: Mapped[dt.datetime | None] = _now()


class UserCpnResult(Base):
    __tablename__ = "user_cpn_results"
    __table_args__ = (
        CheckConstraint(
            "total_interactions >= 0 AND total_cost >= 0 AND total_time_hours >= 0 "
            "AND total_nuts >= 0",
            name="valid_totals",
        ),
        Index("idx_user_cpn_results_user_id", "user_id"),
        Index("idx_user_cpn_results_clerk_id", "clerk_id"),
        Index("idx_user_cpn_results_calculated_at", "calculated_at"),
        # Added by migration 0004: the share page's key, and each user's latest row.
        Index("idx_user_cpn_results_share_token", "share_token", unique=True),
        Index("idx_user_cpn_results_user_latest", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    clerk_id: Mapped[str] = mapped_column(String(255), nullable=False)
    total_interactions: Mapped[int | None] = mapped_column(Integer, server_default=text("0"))
    total_cost: Mapped[Decimal | None] = mapped_column(Numeric(12, 2), server_default=text("0"))
    total_time_hours: Mapped[Decimal | None] = mapped_column(
        Numeric(8, 2), server_default=text("0")
    )
    total_nuts: Mapped[int | None] = mapped_column(Integer, server_default=text("0"))
    average_cost_per_nut: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    average_cost_per_hour: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    average_nuts_per_hour: Mapped[Decimal | None] = mapped_column(Numeric(6, 3))
    overall_efficiency_score: Mapped[Decimal | None] = mapped_column(Numeric(5, 3))
    calculation_period_start: Mapped[dt.date | None] = mapped_column(Date)
    calculation_period_end: Mapped[dt.date | None] = mapped_column(Date)
    recommendations: Mapped[Any | None] = mapped_column(JSONB)
    shareable_graphic_url: Mapped[str | None] = mapped_column(Text)
    share_token: Mapped[str | None] = mapped_column(Text)
    calculated_at: Mapped[dt.datetime | None] = _now()
    created_at: Mapped[dt.datetime | None] = _now()
    updated_at: Mapped[dt.datetime | None] = _now()


class UserInteractionChange(Base):
    """A user whose interactions changed since their CPN result was last computed.

    Stamped by a statement-level trigger on `user_interactions` (migration 0004), consumed by
    the recompute that saw the change; `change_id` tells a later change from the one consumed.
    """

    __tablename__ = "user_interaction_changes"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    # An identity: the stamping trigger sets it back to DEFAULT, i.e. the next value.
    change_id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), nullable=False)
    changed_at: Mapped[dt.datetime] = mapped_column(TZ, nullable=False, server_default=func.now())


class UserSession(Base):
    __tablename__ = "user_sessions"
    __table_args__ = (
        CheckConstraint(
            "created_at <= last_active_at AND "
            "(ended_at IS NULL OR last_active_at <= ended_at) AND "
            "(expires_at IS NULL OR created_at <= expires_at)",
            name="valid_session_times",
        ),
        Index("idx_user_sessions_user_id", "user_id"),
        Index("idx_user_sessions_clerk_id", "clerk_id"),
        # Unique where the seed has a plain index: sessions are upserted by their Clerk id.
        Index("idx_user_sessions_session_id", "session_id", unique=True),
        Index(
            "idx_user_sessions_active",
            "is_active",
            postgresql_where=text("is_active = true"),
        ),
        Index("idx_user_sessions_last_active", "last_active_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    clerk_id: Mapped[str] = mapped_column(String(255), nullable=False)
    session_id: Mapped[str] = mapped_column(String(255), nullable=False)
    ip_address: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(Text)
    device_type: Mapped[str | None] = mapped_column(String(50))
    browser: Mapped[str | None] = mapped_column(String(50))
    location_country: Mapped[str | None] = mapped_column(String(2))
    location_city: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime | None] = _now()
    last_active_at: Mapped[dt.datetime | None] = _now()
    expires_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    ended_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    is_active: Mapped[bool | None] = mapped_column(Boolean, server_default=text("true"))


class DataMigration(Base):
    __tablename__ = "data_migrations"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'completed', 'failed', 'rolled_back')",
            name="valid_migration_status",
        ),
        Index("idx_data_migrations_clerk_id", "clerk_id"),
        Index("idx_data_migrations_status", "status"),
        Index("idx_data_migrations_type", "migration_type"),
        # Migration 0005, beyond the seed: a session's data completes at most once per user.
        Index(
            "idx_data_migrations_completed_session",
            "clerk_id",
            "session_data_id",
            unique=True,
            postgresql_where=text("migration_type = 'session_to_user' AND status = 'completed'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    migration_name: Mapped[str] = mapped_column(String(255), nullable=False)
    session_data_id: Mapped[str | None] = mapped_column(String(255))
    clerk_id: Mapped[str | None] = mapped_column(String(255))
    # SET NULL where the seed has no rule: deleting a user must not fail on its history.
    user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="SET NULL")
    )
    migration_type: Mapped[str] = mapped_column(String(50), nullable=False)
    original_data: Mapped[Any | None] = mapped_column(JSONB)
    migrated_data: Mapped[Any | None] = mapped_column(JSONB)
    status: Mapped[str | None] = mapped_column(String(20), server_default=text("'pending'"))
    error_message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime | None] = _now()
    completed_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    rolled_back_at: Mapped[dt.datetime | None] = mapped_column(TZ)


# The seed document's tables, in foreign-key order (what the seed's backup script dumps).
SEED_TABLES = (
    "users",
    "user_profiles",
    "user_interactions",
    "user_cpn_results",
    "user_sessions",
    "data_migrations",
)


class EventStatus(enum.StrEnum):
    """The states of a stored event, `webhook_events.status` (the CHECK valid_webhook_status):
    the one list of them, for the web's gauges, the workers and the commands."""

    RECEIVED = "received"
    PROCESSING = "processing"
    PROCESSED = "processed"
    IGNORED = "ignored"
    WAITING = "waiting"
    FAILED = "failed"


WEBHOOK_EVENT_STATUSES = tuple(status.value for status in EventStatus)
# An event in a final state is never applied again (but for a replay); an open one will be.
FINAL_EVENT_STATUSES = (EventStatus.PROCESSED, EventStatus.IGNORED, EventStatus.FAILED)
OPEN_EVENT_STATUSES = (EventStatus.RECEIVED, EventStatus.PROCESSING, EventStatus.WAITING)


class WebhookEvent(Base):
    """The inbox: every verified Clerk delivery, stored before the endpoint answers."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        UniqueConstraint("svix_id", name="unique_webhook_svix_id"),
        CheckConstraint(
            "status IN ('received', 'processing', 'processed', 'ignored', 'waiting', 'failed')",
            name="valid_webhook_status",
        ),
        Index("idx_webhook_events_status_received", "status", "received_at"),
        Index("idx_webhook_events_clerk_user_id", "clerk_user_id"),
        Index("idx_webhook_events_type", "event_type"),
        Index(
            "idx_webhook_events_unredacted",
            "received_at",
            postgresql_where=text("payload IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    svix_id: Mapped[str] = mapped_column(String(255), nullable=False)
    event_type: Mapped[str] = mapped_column(String(100), nullable=False)
    clerk_user_id: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[Any | None] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(
        String(20), nullable=False, server_default=text("'received'")
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    received_at: Mapped[dt.datetime] = mapped_column(TZ, nullable=False, server_default=func.now())
    processed_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    redacted_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    # When a worker last took the event (the sweeper's clock for rows stuck in `processing`).
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    waiting_for: Mapped[str | None] = mapped_column(String(255))  # holder of the event's address


class DeletedUser(Base):
    """Tombstone of a Clerk user deleted upstream: no later event may bring the user back."""

    __tablename__ = "deleted_users"

    clerk_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    deleted_at: Mapped[dt.datetime] = mapped_column(TZ, nullable=False, server_default=func.now())


class ScheduledJobRun(Base):
    """When each scheduled job last started: a second beat's copy of the same tick is skipped."""

    __tablename__ = "scheduled_job_runs"

    job_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_started_at: Mapped[dt.datetime] = mapped_column(TZ, nullable=False)
