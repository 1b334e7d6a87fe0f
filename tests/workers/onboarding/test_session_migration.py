"""migrate_session_data against the migrated database: what a valid object writes, what an
invalid one records (and that it writes nothing else), and that the same data never migrates
twice."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from db.models import DataMigration, User, UserInteraction, UserProfile
from tests.workers.onboarding.factories import (
    PAST_DATE,
    count_rows,
    entry,
    make_user,
    onboarding,
    with_value,
)
from workers.onboarding.data_migration import (
    MigrationOutcome,
    migrate_session_data,
    session_data_id_of,
)
from workers.onboarding.validation import utc_today

TOMORROW_UTC = (utc_today() + dt.timedelta(days=1)).isoformat()


def migrate(session: Session, user: User, data: Any, **options: Any) -> MigrationOutcome:
    return migrate_session_data(
        session, clerk_id=user.clerk_id, user_id=user.id, onboarding=data, **options
    )


def migration_row(session: Session, outcome: MigrationOutcome) -> DataMigration:
    row = session.get(DataMigration, outcome.migration_id, populate_existing=True)
    assert row is not None
    return row


def migrated_data_of(row: DataMigration) -> Any:
    assert row.migrated_data is not None
    return row.migrated_data


def interactions(session: Session, user: User) -> list[UserInteraction]:
    return list(
        session.scalars(
            select(UserInteraction)
            .where(UserInteraction.user_id == user.id)
            .order_by(UserInteraction.id)
        )
    )


def profile_of(session: Session, user: User) -> UserProfile | None:
    return session.scalar(
        select(UserProfile)
        .where(UserProfile.user_id == user.id)
        .execution_options(populate_existing=True)
    )


class TestValidObject:
    def test_writes_the_profile_the_interaction_and_one_completed_row(
        self, session: Session
    ) -> None:
        user = make_user(session)
        data = onboarding()

        outcome = migrate(session, user, data)

        assert outcome.status == "completed"
        profile = profile_of(session, user)
        assert profile is not None
        assert (profile.first_name, profile.age, profile.ethnicity, profile.rating) == (
            "Ana",
            27,
            "latina",
            Decimal("8.5"),
        )
        [interaction] = interactions(session, user)
        assert (
            interaction.interaction_date.isoformat(),
            interaction.cost,
            interaction.time_minutes,
            interaction.nuts,
            interaction.notes,
        ) == (PAST_DATE, Decimal("120.50"), 90, 2, "first night out")
        row = migration_row(session, outcome)
        assert (row.migration_name, row.migration_type, row.status, row.error_message) == (
            "onboarding_v1",
            "session_to_user",
            "completed",
            None,
        )
        assert (row.session_data_id, row.clerk_id, row.user_id) == (
            data["sessionDataId"],
            user.clerk_id,
            user.id,
        )
        assert row.original_data == data
        assert row.started_at is not None
        assert row.completed_at is not None
        assert row.started_at <= row.completed_at
        assert row.rolled_back_at is None

    def test_migrated_data_names_each_written_row_with_its_values(self, session: Session) -> None:
        user = make_user(session)

        outcome = migrate(session, user, onboarding())

        profile = profile_of(session, user)
        [interaction] = interactions(session, user)
        assert profile is not None
        assert migration_row(session, outcome).migrated_data == {
            "profile": {
                "id": profile.id,
                "action": "created",
                "values": {"first_name": "Ana", "age": 27, "ethnicity": "latina", "rating": "8.5"},
                "previous": None,
            },
            "interactions": [
                {
                    "id": interaction.id,
                    "values": {
                        "interaction_date": PAST_DATE,
                        "cost": "120.50",
                        "time_minutes": 90,
                        "nuts": 2,
                        "notes": "first night out",
                        "cost_per_nut": "60.25",
                        "cost_per_hour": "80.33",
                        "nuts_per_hour": "1.333",
                    },
                }
            ],
        }

    def test_a_list_of_three_entries_writes_three_interactions_in_order(
        self, session: Session
    ) -> None:
        user = make_user(session)
        entries = [entry(cost=10, nuts=1), entry(cost=20.25, nuts=0), entry(cost=0, time=1440)]

        outcome = migrate(session, user, onboarding(dataEntry=entries))

        assert outcome.status == "completed"
        written = interactions(session, user)
        assert [(row.cost, row.nuts, row.time_minutes) for row in written] == [
            (Decimal("10.00"), 1, 90),
            (Decimal("20.25"), 0, 90),
            (Decimal("0.00"), 2, 1440),
        ]
        recorded = migrated_data_of(migration_row(session, outcome))["interactions"]
        assert [item["id"] for item in recorded] == [row.id for row in written]

    def test_only_entries_and_no_profile(self, session: Session) -> None:
        user = make_user(session)

        outcome = migrate(session, user, onboarding(profile=None))

        assert outcome.status == "completed"
        assert count_rows(session, user) == {"profiles": 0, "interactions": 1, "migrations": 1}
        assert migrated_data_of(migration_row(session, outcome))["profile"] is None

    def test_unknown_keys_are_kept_in_original_data_and_ignored(self, session: Session) -> None:
        user = make_user(session)
        data = onboarding(theme="dark")
        data["profile"]["favouriteColour"] = "teal"

        outcome = migrate(session, user, data)

        assert outcome.status == "completed"
        assert migration_row(session, outcome).original_data == data

    def test_a_profile_that_existed_is_updated_and_its_old_values_recorded(
        self, session: Session
    ) -> None:
        user = make_user(session)
        old = UserProfile(user_id=user.id, clerk_id=user.clerk_id, first_name="Bea", age=30)
        session.add(old)
        session.flush()

        outcome = migrate(session, user, onboarding())

        profile = profile_of(session, user)
        assert profile is not None
        assert profile.id == old.id
        assert (profile.first_name, profile.age) == ("Ana", 27)
        written = migrated_data_of(migration_row(session, outcome))["profile"]
        assert (written["action"], written["previous"]) == (
            "updated",
            {"first_name": "Bea", "age": 30, "ethnicity": None, "rating": None},
        )

    def test_optional_profile_fields_may_be_null_or_absent(self, session: Session) -> None:
        user = make_user(session)
        data = onboarding(profile={"firstName": "Ana", "age": None, "rating": None})

        assert migrate(session, user, data).status == "completed"
        profile = profile_of(session, user)
        assert profile is not None
        assert (profile.age, profile.ethnicity, profile.rating) == (None, None, None)


class TestSessionDataId:
    def test_without_session_data_id_a_hash_of_the_canonical_json_stands_in(
        self, session: Session
    ) -> None:
        user = make_user(session)
        data = onboarding(sessionDataId=None)
        reordered = dict(reversed(list(data.items())))

        outcome = migrate(session, user, data)

        assert outcome.session_data_id.startswith("sha256:")
        assert session_data_id_of(reordered) == outcome.session_data_id
        assert session_data_id_of(onboarding(sessionDataId=None)) == outcome.session_data_id
        assert session_data_id_of(with_value(data, ("dataEntry", "nuts"), 3)) != (
            outcome.session_data_id
        )
        assert migration_row(session, outcome).session_data_id == outcome.session_data_id


class TestIdempotency:
    def test_the_same_data_again_is_skipped_and_writes_nothing(self, session: Session) -> None:
        user = make_user(session)
        data = onboarding()
        first = migrate(session, user, data)

        again = migrate(session, user, data)

        assert (again.status, again.migration_id) == ("skipped", first.migration_id)
        assert count_rows(session, user) == {"profiles": 1, "interactions": 1, "migrations": 1}

    def test_a_rolled_back_migration_is_not_applied_again(self, session: Session) -> None:
        user = make_user(session)
        data = onboarding(profile=None)
        first = migrate(session, user, data)
        session.execute(
            text("UPDATE data_migrations SET status = 'rolled_back' WHERE id = :id"),
            {"id": first.migration_id},
        )

        again = migrate(session, user, data)

        assert (again.status, again.migration_id) == ("skipped", first.migration_id)
        assert count_rows(session, user)["interactions"] == 1

    def test_another_users_identical_data_migrates_for_them(self, session: Session) -> None:
        data = onboarding()
        first, second = make_user(session), make_user(session)

        assert migrate(session, first, data).status == "completed"
        assert migrate(session, second, data).status == "completed"

    def test_a_failed_attempt_is_tried_again_in_the_same_row(self, session: Session) -> None:
        user = make_user(session)
        data = onboarding()
        day_before = dt.date.fromisoformat(PAST_DATE) - dt.timedelta(days=1)
        failed = migrate(session, user, data, today=day_before)
        assert failed.status == "failed"

        retried = migrate(session, user, data)

        assert (retried.status, retried.migration_id) == ("completed", failed.migration_id)
        row = migration_row(session, retried)
        assert (row.status, row.error_message) == ("completed", None)
        assert count_rows(session, user) == {"profiles": 1, "interactions": 1, "migrations": 1}


class TestInvalidData:
    """Each rule on its own: status failed, the message names the field and why, nothing else
    written, the user still there."""

    @pytest.mark.parametrize(
        ("path", "value", "expected"),
        [
            (("profile", "firstName"), ..., "profile.firstName: is required"),
            (("profile", "firstName"), "  ", "profile.firstName: must not be empty"),
            (("profile", "firstName"), 7, "profile.firstName: must be text"),
            (
                ("profile", "firstName"),
                "A" * 101,
                "profile.firstName: must be at most 100 characters",
            ),
            (("profile", "age"), 17, "profile.age: must be between 18 and 99"),
            (("profile", "age"), 100, "profile.age: must be between 18 and 99"),
            (("profile", "age"), "27", "profile.age: must be a whole number"),
            (("profile", "age"), 27.5, "profile.age: must be a whole number"),
            (("profile", "age"), True, "profile.age: must be a whole number"),
            (
                ("profile", "ethnicity"),
                "x" * 51,
                "profile.ethnicity: must be at most 50 characters",
            ),
            (("profile", "ethnicity"), 3, "profile.ethnicity: must be text"),
            (("profile", "rating"), -0.1, "profile.rating: must be between 0 and 10"),
            (("profile", "rating"), 10.5, "profile.rating: must be between 0 and 10"),
            (("profile", "rating"), 8.25, "profile.rating: must have at most 1 decimal place"),
            (("profile", "rating"), "8.5", "profile.rating: must be a number"),
            (("dataEntry", "date"), ..., "dataEntry.date: is required"),
            (
                ("dataEntry", "date"),
                "20/11/2026",
                "dataEntry.date: must be a date written YYYY-MM-DD",
            ),
            (("dataEntry", "date"), "2025-02-30", "dataEntry.date: is not a calendar date"),
            (("dataEntry", "date"), 20261120, "dataEntry.date: must be a date written YYYY-MM-DD"),
            (("dataEntry", "cost"), -0.01, "dataEntry.cost: must not be negative"),
            (("dataEntry", "cost"), 1.005, "dataEntry.cost: must have at most 2 decimal places"),
            (("dataEntry", "cost"), "120.50", "dataEntry.cost: must be a number"),
            (("dataEntry", "cost"), 1e8, "dataEntry.cost: must be at most 99999999.99"),
            (("dataEntry", "time"), 14, "dataEntry.time: must be between 15 and 1440 minutes"),
            (("dataEntry", "time"), 1441, "dataEntry.time: must be between 15 and 1440 minutes"),
            (("dataEntry", "time"), 90.5, "dataEntry.time: must be a whole number"),
            (("dataEntry", "time"), "90", "dataEntry.time: must be a whole number"),
            (("dataEntry", "nuts"), -1, "dataEntry.nuts: must be between 0 and 5"),
            (("dataEntry", "nuts"), 6, "dataEntry.nuts: must be between 0 and 5"),
            (("dataEntry", "nuts"), 2.0, "dataEntry.nuts: must be a whole number"),
            (("dataEntry", "nuts"), None, "dataEntry.nuts: must be a whole number"),
            (("dataEntry", "notes"), ["a"], "dataEntry.notes: must be text"),
            (("dataEntry",), "x", "dataEntry: must be an object or a list of objects"),
            (("profile",), "Ana", "profile: must be an object"),
            (("sessionDataId",), 5, "sessionDataId: must be text"),
        ],
    )
    def test_one_bad_field(
        self, session: Session, path: tuple[Any, ...], value: Any, expected: str
    ) -> None:
        user = make_user(session)
        data = with_value(onboarding(), path, value)

        outcome = migrate(session, user, data)

        assert (outcome.status, outcome.error_message) == ("failed", expected)
        row = migration_row(session, outcome)
        assert (row.status, row.error_message, row.migrated_data) == ("failed", expected, None)
        assert row.original_data == data
        assert row.completed_at is not None
        assert count_rows(session, user) == {"profiles": 0, "interactions": 0, "migrations": 1}
        assert session.get(User, user.id) is not None

    def test_a_future_date_in_utc_fails(self, session: Session) -> None:
        user = make_user(session)

        outcome = migrate(session, user, onboarding(dataEntry=entry(date=TOMORROW_UTC)))

        assert outcome.error_message == (
            "dataEntry.date: must not be in the future (compared with today in UTC)"
        )
        assert count_rows(session, user)["interactions"] == 0

    def test_today_in_utc_is_not_in_the_future(self, session: Session) -> None:
        user = make_user(session)
        session.execute(text("SET LOCAL TIME ZONE 'UTC'"))  # the database's CHECK agrees

        outcome = migrate(session, user, onboarding(dataEntry=entry(date=utc_today().isoformat())))

        assert outcome.status == "completed"

    def test_a_date_the_database_refuses_is_reported_like_a_rule(self, session: Session) -> None:
        """The database's CHECK uses its own time zone; past the rules it still fails cleanly.
        Two days ahead of UTC is in the future in every time zone."""
        user = make_user(session)
        ahead = utc_today() + dt.timedelta(days=2)
        entries = [entry(), entry(date=ahead.isoformat())]

        outcome = migrate(session, user, onboarding(dataEntry=entries), today=ahead)

        assert outcome.error_message == "dataEntry[1].date: must not be in the future"
        assert count_rows(session, user) == {"profiles": 0, "interactions": 0, "migrations": 1}

    def test_several_bad_fields_are_all_named(self, session: Session) -> None:
        user = make_user(session)
        data = onboarding(
            profile={"firstName": "Ana", "age": 16, "rating": 12},
            dataEntry=[entry(), entry(time=5, nuts=9), entry(date=TOMORROW_UTC, cost=-5)],
        )

        outcome = migrate(session, user, data)

        assert outcome.error_message == (
            "profile.age: must be between 18 and 99; "
            "profile.rating: must be between 0 and 10; "
            "dataEntry[1].time: must be between 15 and 1440 minutes; "
            "dataEntry[1].nuts: must be between 0 and 5; "
            "dataEntry[2].date: must not be in the future (compared with today in UTC); "
            "dataEntry[2].cost: must not be negative"
        )
        assert count_rows(session, user) == {"profiles": 0, "interactions": 0, "migrations": 1}

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            ([], "onboarding: must be an object"),
            ("ssd_1", "onboarding: must be an object"),
            ({"sessionDataId": "ssd_1"}, "onboarding: has neither a profile nor a dataEntry"),
            (
                {"profile": None, "dataEntry": []},
                "onboarding: has neither a profile nor a dataEntry",
            ),
        ],
    )
    def test_an_object_with_nothing_to_migrate_fails(
        self, session: Session, data: Any, expected: str
    ) -> None:
        user = make_user(session)

        outcome = migrate(session, user, data)

        assert (outcome.status, outcome.error_message) == ("failed", expected)
        assert migration_row(session, outcome).original_data == data

    def test_a_failure_leaves_an_existing_profile_as_it_was(self, session: Session) -> None:
        user = make_user(session)
        session.add(UserProfile(user_id=user.id, clerk_id=user.clerk_id, first_name="Bea"))
        session.flush()
        data = onboarding(dataEntry=entry(nuts=7))

        assert migrate(session, user, data).status == "failed"

        profile = profile_of(session, user)
        assert profile is not None
        assert profile.first_name == "Bea"
