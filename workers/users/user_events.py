"""`user.created`, `user.updated`, `user.deleted` (DESIGN.md section 3).

A user row is versioned by Clerk's `updated_at`: an event older than the stored row changes
nothing, so deliveries may come in any order and any number of times. A deleted user leaves a
tombstone in `deleted_users`, and no later event for that id brings the user back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, exists, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from cpn_sync.clerk import ClerkUser
from cpn_sync.clerk import DeletedUser as ClerkDeletedUser
from db.models import DataMigration, DeletedUser, User
from workers.core.errors import is_unique_violation
from workers.inbox import state
from workers.inbox.context import PROCESSED, EventContext, EventOutcome
from workers.inbox.errors import PermanentEventError
from workers.onboarding.on_user_created import migrate_onboarding

NO_EMAIL = "user has no email address (users.email is NOT NULL); replay once it has one"
EMAIL_TAKEN = "the user's email address already belongs to another user (unique_email)"


@dataclass(frozen=True)
class UpsertedUser:
    id: int
    applied: bool  # False when the stored row was newer and nothing changed


# On the tables, not the mapped classes: these run for most events, and the ORM's statement
# handling costs more than the lookups themselves.
USERS = cast(Table, User.__table__)
TOMBSTONES = cast(Table, DeletedUser.__table__)
_IS_DELETED = select(exists().where(TOMBSTONES.c.clerk_id == bindparam("clerk_id")))
_FIND_USER_ID = select(USERS.c.id).where(USERS.c.clerk_id == bindparam("clerk_id"))


def is_deleted(session: Session, clerk_id: str) -> bool:
    return bool(session.scalar(_IS_DELETED, {"clerk_id": clerk_id}))


def find_user_id(session: Session, clerk_id: str) -> int | None:
    user_id: int | None = session.scalar(_FIND_USER_ID, {"clerk_id": clerk_id})
    return user_id


USER_COLUMNS = (
    "clerk_id",
    "email",
    "email_verified",
    "first_name",
    "last_name",
    "image_url",
    "created_at",
    "updated_at",
    "last_sign_in_at",
)


def _build_user_upsert() -> ReturningInsert[Any]:
    """Built once, on the table rather than the mapped class: constructing the statement, or
    running it through the ORM's bulk-insert path, costs more than the database does."""
    users = cast(Table, User.__table__)
    insert_user = insert(users).values({name: bindparam(name) for name in USER_COLUMNS})
    excluded = insert_user.excluded
    return insert_user.on_conflict_do_update(
        constraint="unique_clerk_id",
        set_={name: excluded[name] for name in USER_COLUMNS if name != "clerk_id"},
        # Clerk's updated_at versions the row: an older event changes nothing.
        where=or_(users.c.updated_at.is_(None), users.c.updated_at <= excluded.updated_at),
    ).returning(users.c.id)


UPSERT_USER = _build_user_upsert()


def upsert_user(ctx: EventContext, user: ClerkUser) -> UpsertedUser:
    """Insert or update the row of `user`, unless the stored row is newer by Clerk's
    `updated_at`. Raises PermanentEventError when the user cannot be stored."""
    address = user.primary_email
    if address is None:
        raise PermanentEventError(ctx.event_id, NO_EMAIL)
    version = user.updated_at or ctx.envelope.occurred_at or dt.datetime.now(dt.UTC)
    values = {
        "clerk_id": user.id,
        "email": address.email_address,
        "email_verified": address.verified,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "image_url": user.image_url or user.profile_image_url,
        "created_at": user.created_at or version,
        "updated_at": version,
        "last_sign_in_at": user.last_sign_in_at,
    }
    try:
        user_id = ctx.session.scalar(UPSERT_USER, values)
    except IntegrityError as error:
        if is_unique_violation(error, "unique_email"):
            raise PermanentEventError(ctx.event_id, EMAIL_TAKEN) from error
        raise
    if user_id is not None:
        return UpsertedUser(user_id, applied=True)
    stored_id = find_user_id(ctx.session, user.id)
    assert stored_id is not None, "ON CONFLICT matched a row that is not there"
    return UpsertedUser(stored_id, applied=False)


def release_waiting_events(ctx: EventContext, clerk_id: str) -> None:
    """Events that waited for this user run again once this transaction has committed
    (found with one query for every user of the transaction, see `inbox.queue_released`)."""
    ctx.work.arrived_users.add(clerk_id)


def handle_user_upsert(ctx: EventContext) -> EventOutcome:
    user = ClerkUser.model_validate(ctx.envelope.data)
    stored = upsert_user(ctx, user)
    onboarding = ctx.onboarding
    if ctx.envelope.type == "user.created" and onboarding is not None:
        # Inside the event's transaction, after the upsert (also when a redelivery finds the
        # user already there: the data migration is idempotent by session data id).
        migrate_onboarding(ctx, stored.id, user, onboarding)
    release_waiting_events(ctx, user.id)
    return PROCESSED


def handle_user_deleted(ctx: EventContext) -> EventOutcome:
    """Delete the user (the seed's cascades take profile, interactions, results, sessions),
    erase what the service keeps elsewhere, and leave a tombstone."""
    clerk_id = ClerkDeletedUser.model_validate(ctx.envelope.data).id
    session = ctx.session
    session.execute(insert(DeletedUser).values(clerk_id=clerk_id).on_conflict_do_nothing())
    user_ids = select(User.id).where(User.clerk_id == clerk_id).scalar_subquery()
    session.execute(
        delete(DataMigration).where(
            or_(DataMigration.clerk_id == clerk_id, DataMigration.user_id == user_ids)
        )
    )
    session.execute(delete(User).where(User.clerk_id == clerk_id))
    state.redact_user_payloads(session, clerk_id)
    # Events that waited for this user now end as `ignored` (the tombstone decides).
    release_waiting_events(ctx, clerk_id)
    return PROCESSED
