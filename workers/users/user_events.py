"""`user.created`, `user.updated`, `user.deleted` (DESIGN.md section 3).

A user row is versioned by Clerk's `updated_at`: an event older than the stored row changes
nothing, so deliveries may come in any order and any number of times. A deleted user leaves a
tombstone in `deleted_users`, and no later event for that id brings the user back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import Table, bindparam, delete, exists, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from cpn_sync.clerk import ClerkUser
from cpn_sync.clerk import DeletedUser as ClerkDeletedUser
from db.me_sync import MeSyncRequest
from db.models import DataMigration, DeletedUser, EventStatus, User
from workers.core.errors import is_unique_violation
from workers.core.locks import lock_user
from workers.core.unit_of_work import UnitOfWork
from workers.inbox import erasure, state
from workers.inbox.context import PROCESSED, EventContext, EventOutcome
from workers.inbox.errors import EmailHeldError, PermanentEventError, UserDeletedError
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
    running it through the ORM's bulk-insert path, costs more than the database does.

    The statement itself refuses a tombstoned id (a deletion committed after the event was
    read cannot be undone by it) and an address another user holds (the event then waits for
    that holder, `workers.users.email_holders`): in both cases it writes nothing and returns
    no row, as for an event older than the stored row."""
    holders = USERS.alias("holders")
    proposed = select(*(bindparam(name, type_=USERS.c[name].type) for name in USER_COLUMNS)).where(
        ~exists().where(TOMBSTONES.c.clerk_id == bindparam("clerk_id")),
        ~exists().where(
            holders.c.email == bindparam("email"), holders.c.clerk_id != bindparam("clerk_id")
        ),
    )
    insert_user = insert(USERS).from_select(list(USER_COLUMNS), proposed)
    excluded = insert_user.excluded
    return insert_user.on_conflict_do_update(
        constraint="unique_clerk_id",
        set_={name: excluded[name] for name in USER_COLUMNS if name != "clerk_id"},
        # Clerk's updated_at versions the row: an older event changes nothing.
        where=or_(USERS.c.updated_at.is_(None), USERS.c.updated_at <= excluded.updated_at),
    ).returning(USERS.c.id)


UPSERT_USER = _build_user_upsert()


def user_values(user: ClerkUser, fallback: dt.datetime | None) -> dict[str, Any] | None:
    """The row of `user` as UPSERT_USER takes it; None when it has no email address."""
    address = user.primary_email
    if address is None:
        return None
    version = user.updated_at or fallback or dt.datetime.now(dt.UTC)
    return {
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


def write_user(session: Session, values: dict[str, Any]) -> int | None:
    """Run UPSERT_USER: the row's id when it was written, None when nothing was."""
    user_id: int | None = session.scalar(UPSERT_USER, values)
    return user_id


def upsert_user(ctx: EventContext, user: ClerkUser) -> UpsertedUser:
    """Insert or update the row of `user`, unless the stored row is newer by Clerk's
    `updated_at`. Raises UserDeletedError for a tombstoned id, EmailHeldError when another
    stored user holds the address, PermanentEventError when the user cannot be stored."""
    values = user_values(user, ctx.envelope.occurred_at)
    if values is None:
        raise PermanentEventError(ctx.event_id, NO_EMAIL)
    try:
        user_id = write_user(ctx.session, values)
    except IntegrityError as error:
        # A concurrent transaction took the address after this statement began.
        if is_unique_violation(error, "unique_email"):
            raise PermanentEventError(ctx.event_id, EMAIL_TAKEN) from error
        raise
    if user_id is not None:
        return UpsertedUser(user_id, applied=True)
    return UpsertedUser(_not_written(ctx, values), applied=False)


_HOLDERS = USERS.alias("holders")
_WHY_NOT_WRITTEN = select(
    _IS_DELETED.scalar_subquery().label("deleted"),
    select(USERS.c.updated_at)
    .where(USERS.c.clerk_id == bindparam("clerk_id"))
    .scalar_subquery()
    .label("stored_version"),
    select(_HOLDERS.c.clerk_id)
    .where(_HOLDERS.c.email == bindparam("email"), _HOLDERS.c.clerk_id != bindparam("clerk_id"))
    .scalar_subquery()
    .label("holder"),
)


def _not_written(ctx: EventContext, values: dict[str, Any]) -> int:
    """UPSERT_USER wrote nothing: answer the stored row's id when it is newer than the event;
    raise UserDeletedError for a tombstone, EmailHeldError when another user holds the address
    (unless the two users exchange addresses, see `_swap_addresses`)."""
    clerk_id = values["clerk_id"]
    for _ in range(2):  # the holder may have let go meanwhile: then write again, once
        why = ctx.session.execute(
            _WHY_NOT_WRITTEN, {"clerk_id": clerk_id, "email": values["email"]}
        ).one()
        if why.deleted:
            raise UserDeletedError(ctx.event_id, clerk_id)
        if why.stored_version is not None and why.stored_version > values["updated_at"]:
            stored_id = find_user_id(ctx.session, clerk_id)
            assert stored_id is not None, "a newer row that is not there"
            return stored_id
        if why.holder is not None:
            swapped = _swap_addresses(ctx, values, why.holder)
            if swapped is None:
                raise EmailHeldError(ctx.event_id, why.holder)
            return swapped
        user_id = write_user(ctx.session, values)
        if user_id is not None:
            return user_id
    raise PermanentEventError(ctx.event_id, EMAIL_TAKEN)


def _swap_addresses(ctx: EventContext, values: dict[str, Any], holder: str) -> int | None:
    """Two users exchanging addresses: each one's update arrives while the other still holds
    the address, so each would wait for the other for ever. When the holder has an event
    waiting for this user, both rows are written here, in one transaction (the holder's row
    holds a placeholder address in between, never committed), and the holder's event is
    released to finish (its row is then already written). Answer this user's row id, or None
    when the two events do not resolve each other."""
    session = ctx.session
    events = state.EVENTS.c
    waiting_for_me = (
        select(events.event_type, events.payload)
        .where(
            events.status == EventStatus.WAITING,
            events.clerk_user_id == holder,
            events.waiting_for == values["clerk_id"],
        )
        .order_by(events.id.desc())
        .limit(1)
    )
    if session.execute(waiting_for_me).first() is None:
        return None  # the usual case: no exchange, and no need to wait for the holder's lock
    lock_user(session, holder)  # then read again: the holder's events may have moved on
    theirs = session.execute(waiting_for_me.with_for_update()).first()
    their_values = None if theirs is None else _snapshot_values(theirs.event_type, theirs.payload)
    if their_values is None or their_values["clerk_id"] != holder:
        return None
    try:
        with session.begin_nested():
            park_address(session, holder)
            user_id = write_user(session, values)
            if user_id is None or write_user(session, their_values) is None:
                raise _NotExchangedError
    except (_NotExchangedError, IntegrityError):
        return None
    release_waiting_events(ctx, holder)
    return user_id


def park_address(session: Session, clerk_id: str) -> None:
    """Give the user's row a placeholder address for the rest of the transaction, so that
    another user can take its address first (two users exchanging addresses); the caller
    writes the user's new address before committing."""
    placeholder = hashlib.sha256(clerk_id.encode()).hexdigest() + "@address-exchange.invalid"
    session.execute(update(USERS).where(USERS.c.clerk_id == clerk_id).values(email=placeholder))


class _NotExchangedError(Exception):
    """Undo the savepoint of `_swap_addresses`."""


def _snapshot_values(event_type: str, payload: Any) -> dict[str, Any] | None:
    """The user row a stored `user.*` event (or a session event's `data.user`) would write."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if isinstance(data, dict) and event_type.startswith("session."):
        data = data.get("user")
    try:
        user = ClerkUser.model_validate(data)
    except ValidationError:
        return None
    return user_values(user, None)


def release_waiting_events(ctx: EventContext, clerk_id: str) -> None:
    """Events that waited for this user run again once this transaction has committed
    (found with one query for every user of the transaction, see `inbox.queue_released`)."""
    ctx.work.arrived_users.add(clerk_id)


def handle_user_upsert(ctx: EventContext) -> EventOutcome:
    user = ClerkUser.model_validate(ctx.envelope.data)
    stored = upsert_user(ctx, user)
    onboarding = ctx.onboarding
    if onboarding is not None:
        # Inside the event's transaction, after the upsert. A `user.updated` migrates too: the
        # first event that can apply the data does (its `user.created` may have failed or been
        # lost); the data migration runs once per (clerk_id, session data id).
        migrate_onboarding(ctx, stored.id, user, onboarding)
    release_waiting_events(ctx, user.id)
    return PROCESSED


def handle_user_deleted(ctx: EventContext) -> EventOutcome:
    erase_user(ctx.work, ClerkDeletedUser.model_validate(ctx.envelope.data).id)
    return PROCESSED


def erase_user(work: UnitOfWork, clerk_id: str) -> None:
    """Delete the user (the seed's cascades take profile, interactions, results, sessions),
    erase what the service keeps elsewhere, and leave a tombstone: what `user.deleted` does,
    and what reconciling with Clerk does for a user Clerk no longer has. The caller holds the
    user's lock."""
    session = work.session
    session.execute(insert(DeletedUser).values(clerk_id=clerk_id).on_conflict_do_nothing())
    user_ids = select(User.id).where(User.clerk_id == clerk_id).scalar_subquery()
    session.execute(
        delete(DataMigration).where(
            or_(DataMigration.clerk_id == clerk_id, DataMigration.user_id == user_ids)
        )
    )
    session.execute(delete(User).where(User.clerk_id == clerk_id))
    # First-request sync calls may still hold onboarding data that no run has used.
    session.execute(delete(MeSyncRequest).where(MeSyncRequest.clerk_id == clerk_id))
    erasure.redact_user_payloads(session, clerk_id)
    # Events that waited for this user now end as `ignored` (the tombstone decides).
    work.arrived_users.add(clerk_id)
