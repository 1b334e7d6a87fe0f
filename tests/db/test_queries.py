"""db.queries against the migrated database: what each function returns, and how a refused
write looks to its caller (a typed error naming the field, nothing written, the transaction
still usable)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, update
from sqlalchemy.orm import Session

from db import queries
from db.errors import InvalidField, UserNotFound
from db.forms import DataEntryData, ProfileFormData
from db.models import User, UserInteraction, UserProfile

TODAY = dt.date.today()


def make_user(session: Session) -> User:
    clerk_id = f"user_{uuid.uuid4().hex}"
    user = User(clerk_id=clerk_id, email=f"{clerk_id}@example.com")
    session.add(user)
    session.flush()
    return user


def profile(**changes: Any) -> ProfileFormData:
    fields: dict[str, Any] = {"firstName": "Ana", "age": 27, "ethnicity": "latina", "rating": 8.5}
    return ProfileFormData.model_validate({**fields, **changes})


def entry(**changes: Any) -> DataEntryData:
    fields: dict[str, Any] = {
        "date": TODAY - dt.timedelta(days=3),
        "cost": Decimal("120.50"),
        "time": 90,
        "nuts": 2,
        "notes": "first",
    }
    return DataEntryData.model_validate({**fields, **changes})


def count(session: Session, model: type[UserProfile] | type[UserInteraction], user: User) -> int:
    return (
        session.scalar(select(func.count()).select_from(model).where(model.user_id == user.id)) or 0
    )


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements sent while the test runs."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    yield sent
    event.remove(engine, "before_cursor_execute", record)


class TestGetUserByClerkId:
    def test_returns_the_user_with_that_clerk_id(self, session: Session) -> None:
        user = make_user(session)
        make_user(session)

        assert queries.get_user_by_clerk_id(session, user.clerk_id) is user

    def test_returns_none_for_an_unknown_clerk_id(self, session: Session) -> None:
        assert queries.get_user_by_clerk_id(session, "user_unknown") is None


class TestGetUserWithProfile:
    def test_returns_user_and_profile_in_one_query(
        self, session: Session, statements: list[str]
    ) -> None:
        user = make_user(session)
        saved = queries.save_user_profile(session, user.clerk_id, profile())
        session.expunge_all()
        statements.clear()

        found = queries.get_user_with_profile(session, user.clerk_id)

        assert found is not None
        assert (found[0].id, found[1].id if found[1] else None) == (user.id, saved.id)
        assert found[1] is not None
        assert found[1].first_name == "Ana"
        assert len(statements) == 1
        assert "LEFT OUTER JOIN user_profiles" in statements[0]

    def test_returns_none_as_profile_for_a_user_without_one(self, session: Session) -> None:
        user = make_user(session)

        assert queries.get_user_with_profile(session, user.clerk_id) == (user, None)

    def test_returns_none_for_an_unknown_clerk_id(self, session: Session) -> None:
        assert queries.get_user_with_profile(session, "user_unknown") is None


class TestGetUserInteractions:
    def test_returns_the_newest_first_by_created_at_then_id(self, session: Session) -> None:
        user, other = make_user(session), make_user(session)
        rows = [queries.save_user_interaction(session, user.clerk_id, entry()) for _ in range(4)]
        queries.save_user_interaction(session, other.clerk_id, entry())
        # rows[0] is the newest by created_at; rows[1..3] tie, so the highest id comes first.
        session.execute(
            update(UserInteraction)
            .where(UserInteraction.id == rows[0].id)
            .values(created_at=func.now() + dt.timedelta(minutes=5))
        )

        found = queries.get_user_interactions(session, user.clerk_id)

        assert [row.id for row in found] == [rows[0].id, rows[3].id, rows[2].id, rows[1].id]

    def test_returns_at_most_limit_rows(self, session: Session) -> None:
        user = make_user(session)
        for _ in range(3):
            queries.save_user_interaction(session, user.clerk_id, entry())

        assert len(queries.get_user_interactions(session, user.clerk_id, limit=2)) == 2
        assert len(queries.get_user_interactions(session, user.clerk_id)) == 3

    def test_returns_nothing_for_an_unknown_clerk_id(self, session: Session) -> None:
        assert queries.get_user_interactions(session, "user_unknown") == []


class TestSaveUserProfile:
    def test_inserts_the_profile(self, session: Session) -> None:
        user = make_user(session)

        saved = queries.save_user_profile(session, user.clerk_id, profile())

        assert (saved.user_id, saved.clerk_id, saved.first_name) == (user.id, user.clerk_id, "Ana")
        assert (saved.age, saved.ethnicity, saved.rating) == (27, "latina", Decimal("8.5"))
        assert saved.created_at is not None
        assert saved.updated_at == saved.created_at

    def test_a_second_save_updates_the_same_row_and_refreshes_updated_at(
        self, session: Session
    ) -> None:
        user = make_user(session)
        first = queries.save_user_profile(session, user.clerk_id, profile())
        created_at, first_updated_at = first.created_at, first.updated_at

        second = queries.save_user_profile(
            session, user.clerk_id, profile(firstName="Bea", age=31, rating=None)
        )

        assert second.id == first.id
        assert (second.first_name, second.age, second.rating) == ("Bea", 31, None)
        assert second.created_at == created_at
        assert second.updated_at is not None
        assert first_updated_at is not None
        assert second.updated_at > first_updated_at
        assert count(session, UserProfile, user) == 1


class TestSaveUserInteraction:
    def test_returns_the_row_with_its_generated_columns(self, session: Session) -> None:
        user = make_user(session)

        saved = queries.save_user_interaction(session, user.clerk_id, entry())

        assert (saved.user_id, saved.clerk_id, saved.notes) == (user.id, user.clerk_id, "first")
        assert (saved.cost, saved.time_minutes, saved.nuts) == (Decimal("120.50"), 90, 2)
        assert saved.cost_per_nut == Decimal("60.25")
        assert saved.cost_per_hour == Decimal("80.33")
        assert saved.nuts_per_hour == Decimal("1.333")

    def test_without_nuts_the_cost_per_nut_is_the_cost(self, session: Session) -> None:
        user = make_user(session)

        saved = queries.save_user_interaction(session, user.clerk_id, entry(nuts=0))

        assert (saved.cost_per_nut, saved.nuts_per_hour) == (Decimal("120.50"), Decimal("0"))


@pytest.mark.parametrize(
    ("save", "model"),
    [
        (lambda s, c: queries.save_user_profile(s, c, profile()), UserProfile),
        (lambda s, c: queries.save_user_interaction(s, c, entry()), UserInteraction),
    ],
    ids=["save_user_profile", "save_user_interaction"],
)
def test_saving_for_a_missing_user_raises_user_not_found_and_writes_nothing(
    session: Session,
    save: Callable[[Session, str], object],
    model: type[UserProfile] | type[UserInteraction],
) -> None:
    with pytest.raises(UserNotFound) as raised:
        save(session, "user_missing")

    assert raised.value.clerk_id == "user_missing"
    assert session.scalar(select(func.count()).select_from(model)) == 0


@pytest.mark.parametrize(
    ("changes", "field", "constraint"),
    [
        ({"age": 17}, "age", "valid_age"),
        ({"age": 100}, "age", "valid_age"),
        ({"rating": 10.1}, "rating", "valid_rating"),
        ({"rating": -0.5}, "rating", "valid_rating"),
        ({"rating": 100}, "rating", None),  # overflows numeric(3,1)
    ],
    ids=["age 17", "age 100", "rating 10.1", "rating -0.5", "rating 100"],
)
def test_a_refused_profile_names_the_field_and_keeps_the_transaction(
    session: Session, changes: dict[str, Any], field: str, constraint: str | None
) -> None:
    user = make_user(session)

    with pytest.raises(InvalidField) as raised:
        queries.save_user_profile(session, user.clerk_id, profile(**changes))

    assert (raised.value.field, raised.value.constraint) == (field, constraint)
    assert field in str(raised.value)
    assert count(session, UserProfile, user) == 0
    assert queries.save_user_profile(session, user.clerk_id, profile()).age == 27


@pytest.mark.parametrize(
    ("changes", "field", "constraint"),
    [
        ({"time": 14}, "time_minutes", "valid_time"),
        ({"time": 1441}, "time_minutes", "valid_time"),
        ({"nuts": 6}, "nuts", "valid_nuts"),
        ({"nuts": -1}, "nuts", "valid_nuts"),
        ({"cost": Decimal("-0.01")}, "cost", "valid_cost"),
        ({"date": TODAY + dt.timedelta(days=2)}, "interaction_date", "valid_interaction_date"),
        # Overflows of numeric(10,2): the cost itself, then the generated cost per hour.
        ({"cost": Decimal("100000000")}, "cost", None),
        ({"cost": Decimal("99999999.99"), "time": 15}, "cost", None),
        # Arithmetic errors in the generated columns that hide a broken rule.
        ({"time": 0}, "time_minutes", "valid_time"),
        ({"time": 1, "cost": Decimal("10000000")}, "time_minutes", "valid_time"),
        ({"nuts": 6000, "time": 15}, "nuts", "valid_nuts"),
    ],
    ids=[
        "time 14",
        "time 1441",
        "nuts 6",
        "nuts -1",
        "cost -0.01",
        "future date",
        "cost 1e8",
        "cost per hour overflow",
        "time 0",
        "time 1 cost per hour overflow",
        "nuts 6000 nuts per hour overflow",
    ],
)
def test_a_refused_interaction_names_the_field_and_keeps_the_transaction(
    session: Session, changes: dict[str, Any], field: str, constraint: str | None
) -> None:
    user = make_user(session)
    kept = queries.save_user_interaction(session, user.clerk_id, entry())

    with pytest.raises(InvalidField) as raised:
        queries.save_user_interaction(session, user.clerk_id, entry(**changes))

    assert (raised.value.field, raised.value.constraint) == (field, constraint)
    assert field in str(raised.value)
    assert [row.id for row in queries.get_user_interactions(session, user.clerk_id)] == [kept.id]
    assert queries.save_user_interaction(session, user.clerk_id, entry()).id > kept.id
