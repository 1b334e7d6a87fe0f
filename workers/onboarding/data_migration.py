"""Moving one onboarding object from browser session storage into the database: the seed's
`migrateSessionToUser`, recorded in one `data_migrations` row and reversible
(`workers.onboarding.rollback` reads what `migrated_data` says was written).

It flushes, never commits: the caller's transaction (an event's, or one import line's) owns it.
Its writes run in a SAVEPOINT, so a failure leaves nothing but the `failed` row, and the caller's
own work (the user upsert) stays.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from psycopg import errors as pg_errors
from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from sqlalchemy import func, insert, null, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cpn_sync.logs import get_logger
from cpn_sync.onboarding_key import onboarding_key
from db.errors import InvalidField, UserNotFound
from db.models import DataMigration, User, UserProfile
from db.queries import save_user_interaction, save_user_profile
from workers.onboarding.validation import (
    FieldError,
    InvalidOnboarding,
    Onboarding,
    OnboardingProfile,
    UnreadableOnboarding,
    describe,
    parse_onboarding,
)

log = get_logger(__name__)

MIGRATION_NAME = "onboarding_v1"
MIGRATION_TYPE = "session_to_user"
COMPLETED_ONCE_INDEX = "idx_data_migrations_completed_session"
PROFILE_COLUMNS = ("first_name", "age", "ethnicity", "rating")
INTERACTION_COLUMNS = (
    "interaction_date", "cost", "time_minutes", "nuts", "notes",
    "cost_per_nut", "cost_per_hour", "nuts_per_hour",
)  # fmt: skip
# Columns the database may refuse, as the front end names them.
_FRONT_END_NAMES = {"first_name": "firstName", "time_minutes": "time", "interaction_date": "date"}

OutcomeStatus = Literal["completed", "failed", "skipped"]


class ProfileWrite(BaseModel):
    """The profile a migration wrote; `previous` holds what it overwrote (None: it created it)."""

    id: int
    action: Literal["created", "updated"]
    values: dict[str, Any]
    previous: dict[str, Any] | None = None


class InteractionWrite(BaseModel):
    id: int
    values: dict[str, Any]


class MigratedData(BaseModel):
    """`data_migrations.migrated_data`: exactly what was written, so it can be undone."""

    profile: ProfileWrite | None = None
    interactions: list[InteractionWrite] = []


@dataclass(frozen=True)
class MigrationOutcome:
    """`skipped`: an earlier completed (or rolled back) migration of the same data stands."""

    status: OutcomeStatus
    migration_id: int
    session_data_id: str
    errors: tuple[FieldError, ...] = ()

    @property
    def error_message(self) -> str | None:
        return describe(list(self.errors)) if self.errors else None


def session_data_id_of(onboarding: Any) -> str:
    """`cpn_sync.onboarding_key`, and for data that could not be read the hash of its text."""
    if isinstance(onboarding, UnreadableOnboarding):
        return "sha256:" + onboarding.digest
    return onboarding_key(onboarding)


def migrate_session_data(
    session: Session,
    *,
    clerk_id: str,
    user_id: int,
    onboarding: Any,
    today: dt.date | None = None,
    refused: list[FieldError] | None = None,
) -> MigrationOutcome:
    """Validate `onboarding` and write it for the user, once per `(clerk_id, session_data_id)`;
    `refused` fields fail it whatever they hold.

    Idempotent: when a completed (or pending, or rolled back) migration of the same data
    exists, nothing happens. A failed earlier attempt is tried again and its row reused.
    """
    session_data_id = session_data_id_of(onboarding)
    started_at = session.scalar(select(func.clock_timestamp()))
    earlier = session.scalars(
        select(DataMigration)
        .where(
            DataMigration.clerk_id == clerk_id,
            DataMigration.session_data_id == session_data_id,
            DataMigration.migration_type == MIGRATION_TYPE,
        )
        .order_by(DataMigration.id)
        .with_for_update()
    ).all()
    standing = [row for row in earlier if row.status != "failed"]
    if standing:
        return _skipped(standing[0].id, session_data_id, standing[0].status)
    record = _Recorder(session, clerk_id, user_id, session_data_id, onboarding, started_at)
    retry_id = earlier[-1].id if earlier else None
    try:
        if refused:  # values the web had to replace (`cpn_sync.unstorable`): never migrated
            raise InvalidOnboarding(refused)
        parsed = parse_onboarding(onboarding, today)
        with session.begin_nested():
            migrated = _write(session, clerk_id, user_id, parsed)
            migration_id = record(retry_id, "completed", migrated=migrated)
    except InvalidOnboarding as invalid:
        migration_id = record(retry_id, "failed", errors=invalid.errors)
        log.warning(
            "session_migration.failed",
            migration_id=migration_id,
            user_id=user_id,
            fields=[error.field for error in invalid.errors],
        )
        return MigrationOutcome("failed", migration_id, session_data_id, tuple(invalid.errors))
    except IntegrityError as error:
        if not _violates(error, COMPLETED_ONCE_INDEX):
            raise
        # A concurrent delivery of the same data completed first; its writes stand, ours are gone.
        winner = session.scalar(
            select(DataMigration.id).where(
                DataMigration.clerk_id == clerk_id,
                DataMigration.session_data_id == session_data_id,
                DataMigration.status == "completed",
            )
        )
        assert winner is not None, "the unique index matched a row that is not there"
        return _skipped(winner, session_data_id, "completed")
    log.info(
        "session_migration.completed",
        migration_id=migration_id,
        user_id=user_id,
        profile=migrated.profile.action if migrated.profile else None,
        interactions=len(migrated.interactions),
    )
    return MigrationOutcome("completed", migration_id, session_data_id)


def _skipped(migration_id: int, session_data_id: str, status: str | None) -> MigrationOutcome:
    log.info("session_migration.skipped", migration_id=migration_id, existing_status=status)
    return MigrationOutcome("skipped", migration_id, session_data_id)


def _write(session: Session, clerk_id: str, user_id: int, onboarding: Onboarding) -> MigratedData:
    # Lock the user row: no profile or interaction of theirs can appear until this commits, so
    # "created" versus "updated" below is exact.
    locked = session.scalar(
        select(User.id).where(User.id == user_id, User.clerk_id == clerk_id).with_for_update()
    )
    if locked is None:
        raise UserNotFound(clerk_id)
    migrated = MigratedData()
    if onboarding.profile is not None:
        migrated.profile = _write_profile(session, clerk_id, user_id, onboarding.profile)
    listed = len(onboarding.data_entry) > 1
    for index, entry in enumerate(onboarding.data_entry):
        try:
            saved = save_user_interaction(session, clerk_id, entry.form())
        except InvalidField as refused:
            where = f"dataEntry[{index}]" if listed else "dataEntry"
            raise _refused(where, refused) from refused
        values = _values(saved, INTERACTION_COLUMNS)
        migrated.interactions.append(InteractionWrite(id=saved.id, values=values))
    return migrated


def _write_profile(
    session: Session, clerk_id: str, user_id: int, profile: OnboardingProfile
) -> ProfileWrite:
    previous = session.scalar(select(UserProfile).where(UserProfile.user_id == user_id))
    previous_values = None if previous is None else _values(previous, PROFILE_COLUMNS)
    try:
        saved = save_user_profile(session, clerk_id, profile.form())
    except InvalidField as refused:
        raise _refused("profile", refused) from refused
    return ProfileWrite(
        id=saved.id,
        action="created" if previous is None else "updated",
        values=_values(saved, PROFILE_COLUMNS),
        previous=previous_values,
    )


def _refused(where: str, refused: InvalidField) -> InvalidOnboarding:
    """A value the rules let through but the database refused (its CURRENT_DATE is in the
    server's time zone, not UTC): reported like any other bad field."""
    name = _FRONT_END_NAMES.get(refused.field, refused.field)
    return InvalidOnboarding([FieldError(f"{where}.{name}", refused.reason)])


def _values(row: Any, columns: tuple[str, ...]) -> dict[str, Any]:
    """Column values as JSON: decimals as exact strings, dates as ISO text."""
    jsonable: dict[str, Any] = to_jsonable_python({name: getattr(row, name) for name in columns})
    return jsonable


def _violates(error: IntegrityError, constraint: str) -> bool:
    cause = error.orig
    return isinstance(cause, pg_errors.UniqueViolation) and cause.diag.constraint_name == constraint


@dataclass(frozen=True)
class _Recorder:
    """Writes the migration's one `data_migrations` row (or reuses a failed attempt's)."""

    session: Session
    clerk_id: str
    user_id: int
    session_data_id: str
    onboarding: Any
    started_at: dt.datetime | None

    def __call__(
        self,
        retry_id: int | None,
        status: OutcomeStatus,
        *,
        migrated: MigratedData | None = None,
        errors: list[FieldError] | None = None,
    ) -> int:
        values: dict[str, Any] = {
            "migration_name": MIGRATION_NAME,
            "session_data_id": self.session_data_id,
            "clerk_id": self.clerk_id,
            "user_id": self.user_id,
            "migration_type": MIGRATION_TYPE,
            "original_data": (
                null()
                if self.onboarding is None or isinstance(self.onboarding, UnreadableOnboarding)
                else self.onboarding
            ),
            "migrated_data": null() if migrated is None else migrated.model_dump(mode="json"),
            "status": status,
            "error_message": describe(errors) if errors else None,
            "started_at": self.started_at,
            "completed_at": func.clock_timestamp(),
            "rolled_back_at": None,
        }
        statement = (
            insert(DataMigration).values(values)
            if retry_id is None
            else update(DataMigration).where(DataMigration.id == retry_id).values(values)
        )
        migration_id: int = self.session.execute(statement.returning(DataMigration.id)).scalar_one()
        return migration_id
