"""rollback_migration: it removes exactly what the migration wrote, restores what it overwrote,
and refuses (changing nothing) whatever cannot be rolled back."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from db.models import DataMigration, User, UserInteraction, UserProfile
from tests.workers.onboarding.factories import count_rows, entry, make_user, onboarding
from workers.onboarding.data_migration import MigrationOutcome, migrate_session_data
from workers.onboarding.rollback import (
    MigrationNotFound,
    NotRollbackable,
    ProfileChangedSince,
    rollback_migration,
)


def migrate(session: Session, user: User, data: Any) -> MigrationOutcome:
    outcome = migrate_session_data(
        session, clerk_id=user.clerk_id, user_id=user.id, onboarding=data
    )
    return outcome


def snapshot(session: Session, user: User) -> dict[str, Any]:
    """Everything a rollback could touch for the user, as plain values."""
    session.expire_all()
    profile = session.scalar(select(UserProfile).where(UserProfile.user_id == user.id))
    migrations = session.scalars(
        select(DataMigration).where(DataMigration.user_id == user.id).order_by(DataMigration.id)
    ).all()
    return {
        "profile": None
        if profile is None
        else (profile.id, profile.first_name, profile.age, profile.ethnicity, profile.rating),
        "interactions": session.scalars(
            select(UserInteraction.id)
            .where(UserInteraction.user_id == user.id)
            .order_by(UserInteraction.id)
        ).all(),
        "migrations": [(row.id, row.status, row.rolled_back_at) for row in migrations],
    }


class TestRollback:
    def test_a_migration_that_created_the_profile_removes_it_and_its_interactions(
        self, session: Session
    ) -> None:
        user = make_user(session)
        outcome = migrate(session, user, onboarding(dataEntry=[entry(), entry(nuts=0)]))

        result = rollback_migration(session, outcome.migration_id)

        assert (result.profile, result.interactions_deleted, result.user_id) == (
            "deleted",
            2,
            user.id,
        )
        assert count_rows(session, user) == {"profiles": 0, "interactions": 0, "migrations": 1}
        row = session.get(DataMigration, outcome.migration_id, populate_existing=True)
        assert row is not None
        assert row.status == "rolled_back"
        assert row.rolled_back_at is not None
        assert row.completed_at is not None
        assert row.rolled_back_at >= row.completed_at

    def test_a_migration_that_overwrote_a_profile_restores_the_old_values(
        self, session: Session
    ) -> None:
        user = make_user(session)
        old = UserProfile(
            user_id=user.id,
            clerk_id=user.clerk_id,
            first_name="Bea",
            age=30,
            ethnicity=None,
            rating=Decimal("6.5"),
        )
        session.add(old)
        session.flush()
        outcome = migrate(session, user, onboarding())

        result = rollback_migration(session, outcome.migration_id)

        assert result.profile == "restored"
        assert snapshot(session, user)["profile"] == (old.id, "Bea", 30, None, Decimal("6.5"))
        assert count_rows(session, user)["interactions"] == 0

    def test_interactions_the_migration_did_not_write_stay(self, session: Session) -> None:
        user = make_user(session)
        outcome = migrate(session, user, onboarding(profile=None))
        own = UserInteraction(
            user_id=user.id,
            clerk_id=user.clerk_id,
            interaction_date=dt.date(2025, 3, 1),
            cost=Decimal(10),
            time_minutes=30,
            nuts=1,
        )
        session.add(own)
        session.flush()

        result = rollback_migration(session, outcome.migration_id)

        assert (result.profile, result.interactions_deleted) == ("none", 1)
        assert snapshot(session, user)["interactions"] == [own.id]

    def test_interactions_already_deleted_are_counted_not_an_error(self, session: Session) -> None:
        user = make_user(session)
        outcome = migrate(session, user, onboarding(dataEntry=[entry(), entry()]))
        first = session.scalars(
            select(UserInteraction.id)
            .where(UserInteraction.user_id == user.id)
            .order_by(UserInteraction.id)
        ).first()
        session.execute(delete(UserInteraction).where(UserInteraction.id == first))

        result = rollback_migration(session, outcome.migration_id)

        assert (result.interactions_deleted, result.interactions_already_gone) == (1, 1)
        assert count_rows(session, user)["interactions"] == 0


def refusal(session: Session, user: User, migration_id: int, error: type[Exception]) -> str:
    """The message of the error the rollback raises, after checking it changed nothing."""
    before = snapshot(session, user)
    with pytest.raises(error) as raised:
        rollback_migration(session, migration_id)
    assert snapshot(session, user) == before
    return str(raised.value)


class TestRefusals:
    """Each refusal is a clear error and leaves every row as it was."""

    def test_rolling_back_twice_is_an_error_and_changes_nothing(self, session: Session) -> None:
        user = make_user(session)
        outcome = migrate(session, user, onboarding())
        rollback_migration(session, outcome.migration_id)

        message = refusal(session, user, outcome.migration_id, NotRollbackable)

        assert message == f"migration {outcome.migration_id}: was already rolled back"

    def test_a_failed_migration_cannot_be_rolled_back(self, session: Session) -> None:
        user = make_user(session)
        session.add(UserProfile(user_id=user.id, clerk_id=user.clerk_id, first_name="Bea"))
        session.flush()
        outcome = migrate(session, user, onboarding(dataEntry=entry(nuts=9)))

        message = refusal(session, user, outcome.migration_id, NotRollbackable)

        assert message == (
            f"migration {outcome.migration_id}: is failed, only a completed migration "
            "can be rolled back"
        )

    def test_an_unknown_migration_id(self, session: Session) -> None:
        with pytest.raises(MigrationNotFound, match=r"^migration 987654321: no such data"):
            rollback_migration(session, 987654321)

    def test_a_profile_changed_after_the_migration_is_left_alone(self, session: Session) -> None:
        user = make_user(session)
        outcome = migrate(session, user, onboarding())
        profile = session.scalars(select(UserProfile).where(UserProfile.user_id == user.id)).one()
        profile.age = 28
        profile.rating = Decimal("9.0")
        session.flush()

        message = refusal(session, user, outcome.migration_id, ProfileChangedSince)

        assert message == (
            f"migration {outcome.migration_id}: profile {profile.id} was changed after the "
            "migration (age, rating); rolling back would lose that change "
            "(use --force to roll back anyway)"
        )

    def test_force_rolls_back_a_changed_profile(self, session: Session) -> None:
        user = make_user(session)
        outcome = migrate(session, user, onboarding())
        profile = session.scalars(select(UserProfile).where(UserProfile.user_id == user.id)).one()
        profile.first_name = "Ana Maria"
        session.flush()

        result = rollback_migration(session, outcome.migration_id, force=True)

        assert result.profile == "deleted"
        assert count_rows(session, user) == {"profiles": 0, "interactions": 0, "migrations": 1}
