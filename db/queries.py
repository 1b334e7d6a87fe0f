"""The seed's query functions, in Python. They flush, never commit: the caller owns the
transaction. A write that the database refuses raises `InvalidField` naming the column, inside a
SAVEPOINT, so the caller's transaction stays usable and nothing of the write remains."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from psycopg import errors as pg_errors
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from db.errors import InvalidField, UserNotFound
from db.forms import DataEntryData, ProfileFormData
from db.models import User, UserInteraction, UserProfile

# The seed's CHECK constraints: the column each one guards, and what it asks.
CHECKED_FIELDS: dict[str, tuple[str, str]] = {
    "valid_age": ("age", "must be between 18 and 99"),
    "valid_rating": ("rating", "must be between 0 and 10"),
    "valid_cost": ("cost", "must not be negative"),
    "valid_time": ("time_minutes", "must be between 15 and 1440 minutes"),
    "valid_nuts": ("nuts", "must be between 0 and 5"),
    "valid_interaction_date": ("interaction_date", "must not be in the future"),
}
# Value errors raised while converting or computing a column (numeric(p,s) overflow, a division
# by a zero time_minutes in the generated columns).
_ARITHMETIC_ERRORS = (pg_errors.NumericValueOutOfRange, pg_errors.DivisionByZero)


def get_user_by_clerk_id(session: Session, clerk_id: str) -> User | None:
    return session.scalars(select(User).where(User.clerk_id == clerk_id)).one_or_none()


def get_user_with_profile(
    session: Session, clerk_id: str
) -> tuple[User, UserProfile | None] | None:
    """The user and their profile (None when they have none), in one query."""
    row = session.execute(
        select(User, UserProfile)
        .outerjoin(UserProfile, UserProfile.user_id == User.id)
        .where(User.clerk_id == clerk_id)
    ).one_or_none()
    return None if row is None else (row[0], row[1])


def get_user_interactions(
    session: Session, clerk_id: str, limit: int = 10
) -> Sequence[UserInteraction]:
    """The user's latest interactions, newest first (ties broken by id, newest first)."""
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    return session.scalars(
        select(UserInteraction)
        .where(UserInteraction.clerk_id == clerk_id)
        .order_by(UserInteraction.created_at.desc(), UserInteraction.id.desc())
        .limit(limit)
    ).all()


def save_user_profile(session: Session, clerk_id: str, profile: ProfileFormData) -> UserProfile:
    """Insert the user's profile, or update it in place (one profile per user).

    `updated_at` is the time of this statement, not of the transaction: a profile saved twice
    in one transaction shows the second write.
    """
    user_id = _user_id(session, clerk_id)
    values = profile.model_dump()
    statement = (
        insert(UserProfile)
        .values(user_id=user_id, clerk_id=clerk_id, **values)
        .on_conflict_do_update(
            index_elements=[UserProfile.user_id],
            set_={**values, "updated_at": func.statement_timestamp()},
        )
        .returning(UserProfile)
        .execution_options(populate_existing=True)
    )
    with _refused_as_invalid_field(session, values, overflow_field="rating"):
        return session.scalars(statement).one()


def save_user_interaction(
    session: Session, clerk_id: str, interaction: DataEntryData
) -> UserInteraction:
    """Insert one interaction; the row comes back with its generated cost and rate columns."""
    user_id = _user_id(session, clerk_id)
    values = {
        "interaction_date": interaction.date,
        "cost": interaction.cost,
        "time_minutes": interaction.time,
        "nuts": interaction.nuts,
        "notes": interaction.notes,
    }
    statement = (
        insert(UserInteraction)
        .values(user_id=user_id, clerk_id=clerk_id, **values)
        .returning(UserInteraction)
    )
    try:
        with _refused_as_invalid_field(session, values, overflow_field="cost"):
            return session.scalars(statement).one()
    except InvalidField as error:
        if error.constraint is not None:
            raise
        # PostgreSQL computes the generated columns before it checks the CHECKs, so an
        # overflow there may hide a broken rule: ask the rules alone which field it was.
        _check_interaction_rules(session, user_id, clerk_id, values)
        raise


def _user_id(session: Session, clerk_id: str) -> int:
    user_id = session.scalar(select(User.id).where(User.clerk_id == clerk_id))
    if user_id is None:
        raise UserNotFound(clerk_id)
    return user_id


@contextmanager
def _refused_as_invalid_field(
    session: Session, values: Mapping[str, Any], overflow_field: str
) -> Iterator[None]:
    """Run a write in a SAVEPOINT; turn a CHECK violation or a value error into `InvalidField`.

    A numeric overflow is blamed on `overflow_field`, the write's one numeric input (integers
    are already bounded by the form models, text lengths too).
    """
    try:
        with session.begin_nested():
            yield
    except DBAPIError as error:
        invalid = _as_invalid_field(error, values, overflow_field)
        if invalid is None:
            raise
        raise invalid from error


def _as_invalid_field(
    error: DBAPIError, values: Mapping[str, Any], overflow_field: str
) -> InvalidField | None:
    cause = error.orig
    if isinstance(cause, pg_errors.CheckViolation):
        constraint = cause.diag.constraint_name or ""
        if constraint in CHECKED_FIELDS:
            field, reason = CHECKED_FIELDS[constraint]
            return InvalidField(field, values.get(field), reason, constraint=constraint)
    elif isinstance(cause, _ARITHMETIC_ERRORS):
        reason = f"is out of range ({cause.diag.message_primary})"
        return InvalidField(overflow_field, values.get(overflow_field), reason)
    return None


def _check_interaction_rules(
    session: Session, user_id: int, clerk_id: str, values: Mapping[str, Any]
) -> None:
    """Insert the values into a copy of the table without its generated columns, inside a
    SAVEPOINT that is always rolled back: a CHECK violation there names the field."""
    savepoint = session.begin_nested()
    try:
        session.execute(
            text(
                "CREATE TEMPORARY TABLE interaction_rules "
                "(LIKE user_interactions INCLUDING CONSTRAINTS) ON COMMIT DROP"
            )
        )
        session.execute(
            text(
                "INSERT INTO interaction_rules "
                "(id, user_id, clerk_id, interaction_date, cost, time_minutes, nuts, notes) "
                "VALUES (0, :user_id, :clerk_id, :interaction_date, :cost, :time_minutes, "
                ":nuts, :notes)"
            ),
            {"user_id": user_id, "clerk_id": clerk_id, **values},
        )
    except DBAPIError as error:
        invalid = _as_invalid_field(error, values, overflow_field="cost")
        if invalid is None:
            raise
        raise invalid from error
    finally:
        savepoint.rollback()
