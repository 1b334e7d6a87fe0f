"""Undoing one completed session-data migration, from what its `migrated_data` says it wrote.

It removes exactly the interactions the migration inserted, restores the profile it overwrote
(or deletes the profile it created), and marks the row `rolled_back`. A profile changed since
the migration is not touched unless the operator forces it: rolling back must not lose an edit
the user made afterwards. It flushes, never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from cpn_sync.logs import get_logger
from db.models import DataMigration, UserInteraction, UserProfile
from workers.core.locks import lock_user
from workers.onboarding.data_migration import (
    MIGRATION_TYPE,
    PROFILE_COLUMNS,
    MigratedData,
    ProfileWrite,
)

log = get_logger(__name__)

ProfileUndo = Literal["deleted", "restored", "already gone", "none"]


class RollbackError(Exception):
    """Why a migration cannot be rolled back; nothing was changed."""

    def __init__(self, migration_id: int, reason: str) -> None:
        super().__init__(f"migration {migration_id}: {reason}")
        self.migration_id = migration_id
        self.reason = reason


class MigrationNotFound(RollbackError):  # noqa: N818 - the name says what happened
    def __init__(self, migration_id: int) -> None:
        super().__init__(migration_id, "no such data migration")


class NotRollbackable(RollbackError):  # noqa: N818
    """Only a completed session-to-user migration can be rolled back, and only once."""

    def __init__(self, migration_id: int, status: str | None, migration_type: str) -> None:
        if migration_type != MIGRATION_TYPE:
            reason = f"is a {migration_type!r} migration, not {MIGRATION_TYPE!r}"
        elif status == "rolled_back":
            reason = "was already rolled back"
        else:
            reason = f"is {status}, only a completed migration can be rolled back"
        super().__init__(migration_id, reason)
        self.status = status


class ProfileChangedSince(RollbackError):  # noqa: N818
    def __init__(self, migration_id: int, profile_id: int, fields: list[str]) -> None:
        super().__init__(
            migration_id,
            f"profile {profile_id} was changed after the migration ({', '.join(fields)}); "
            "rolling back would lose that change (use --force to roll back anyway)",
        )
        self.profile_id = profile_id
        self.fields = fields


@dataclass(frozen=True)
class RollbackResult:
    migration_id: int
    user_id: int | None
    interactions_deleted: int
    interactions_already_gone: int
    profile: ProfileUndo


def rollback_migration(
    session: Session, migration_id: int, *, force: bool = False
) -> RollbackResult:
    """Undo a completed migration; raises a `RollbackError` (and changes nothing) otherwise."""
    clerk_id = session.scalar(
        select(DataMigration.clerk_id).where(DataMigration.id == migration_id)
    )
    if clerk_id is not None:
        lock_user(session, clerk_id)  # the user's lock before any row lock, as events take them
    row = session.scalar(
        select(DataMigration).where(DataMigration.id == migration_id).with_for_update()
    )
    if row is None:
        raise MigrationNotFound(migration_id)
    if row.status != "completed" or row.migration_type != MIGRATION_TYPE:
        raise NotRollbackable(migration_id, row.status, row.migration_type)
    migrated = MigratedData.model_validate(row.migrated_data or {})

    profile: ProfileUndo = "none"
    if migrated.profile is not None:
        profile = _undo_profile(session, migration_id, migrated.profile, force=force)
    created_ids = [interaction.id for interaction in migrated.interactions]
    deleted = session.scalars(
        delete(UserInteraction)
        .where(UserInteraction.id.in_(created_ids), UserInteraction.clerk_id == row.clerk_id)
        .returning(UserInteraction.id)
    ).all()
    session.execute(
        update(DataMigration)
        .where(DataMigration.id == migration_id)
        .values(status="rolled_back", rolled_back_at=func.clock_timestamp())
    )
    result = RollbackResult(
        migration_id=migration_id,
        user_id=row.user_id,
        interactions_deleted=len(deleted),
        interactions_already_gone=len(created_ids) - len(deleted),
        profile=profile,
    )
    log.info(
        "session_migration.rolled_back",
        migration_id=migration_id,
        user_id=row.user_id,
        interactions_deleted=result.interactions_deleted,
        profile=profile,
    )
    return result


def _undo_profile(
    session: Session, migration_id: int, written: ProfileWrite, *, force: bool
) -> ProfileUndo:
    current = session.scalar(
        select(UserProfile).where(UserProfile.id == written.id).with_for_update()
    )
    if current is None:
        return "already gone"
    changed = [
        name
        for name in PROFILE_COLUMNS
        if not _same(getattr(current, name), written.values.get(name))
    ]
    if changed and not force:
        raise ProfileChangedSince(migration_id, written.id, changed)
    if written.previous is None:
        session.execute(delete(UserProfile).where(UserProfile.id == written.id))
        return "deleted"
    restored = {name: written.previous.get(name) for name in PROFILE_COLUMNS}
    if restored["rating"] is not None:
        restored["rating"] = Decimal(str(restored["rating"]))
    session.execute(
        update(UserProfile)
        .where(UserProfile.id == written.id)
        .values(**restored, updated_at=func.statement_timestamp())
    )
    return "restored"


def _same(stored: Any, written: Any) -> bool:
    """A column's value against its JSON form in `migrated_data` (decimals were kept as text)."""
    if isinstance(stored, Decimal) and written is not None:
        return stored == Decimal(str(written))
    return bool(stored == written)
