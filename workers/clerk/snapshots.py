"""Users as Clerk's Backend API answers them, applied to the database a page at a time.

One mapping: an API `User` is the `data` of a `user.*` webhook, so it goes through the same
model (`cpn_sync.clerk.ClerkUser`) and the same row values (`user_events.user_values`). One
statement writes the page (`workers.users.user_batches`), with the rules of an event: tombstones
hold, an older snapshot never overwrites a newer row, an address another user holds is not
taken. Then the onboarding migration runs, once per `(clerk_id, sessionDataId)`, for the users
whose `unsafe_metadata.onboarding` was never migrated. The caller owns the transaction; the
page's users are locked (as an event locks its user) before anything is written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from cpn_sync import unstorable
from cpn_sync.clerk import ClerkUser
from cpn_sync.logs import get_logger
from workers.core.errors import describe_validation_error, is_transient
from workers.core.locks import lock_users
from workers.core.unit_of_work import UnitOfWork
from workers.inbox import state
from workers.onboarding.data_migration import MIGRATION_TYPE, session_data_id_of
from workers.onboarding.on_user_created import migrate_user_onboarding
from workers.users import user_batches
from workers.users.user_events import NO_EMAIL, user_values

log = get_logger(__name__)

# `erased`: Clerk answered 404 and the user was erased as `user.deleted` erases.
Result = Literal["created", "updated", "unchanged", "deleted", "held", "erased", "failed"]
HELD = "its email address belongs to another stored user ({holder})"

_MIGRATED = text(
    "SELECT clerk_id, session_data_id FROM data_migrations "
    "WHERE migration_type = :kind AND status <> 'failed' AND (clerk_id, session_data_id) IN "
    "(SELECT * FROM unnest(CAST(:clerk_ids AS text[]), CAST(:data_ids AS text[])))"
)


@dataclass(frozen=True)
class AppliedSnapshot:
    """What applying one user did. `deleted`: tombstoned, nothing written; `held`: another
    stored user holds its address (the holder is named in `reason`)."""

    clerk_id: str
    result: Result
    user_id: int | None = None
    reason: str | None = None
    onboarding: str | None = None  # the migration's status when one ran: completed, failed
    holder: str | None = None  # `held`: the Clerk id of the user holding the address


@dataclass
class PageOutcome:
    applied: list[AppliedSnapshot] = field(default_factory=list)

    @property
    def counts(self) -> Counter[str]:
        counts: Counter[str] = Counter(item.result for item in self.applied)
        counts.update(f"onboarding_{item.onboarding}" for item in self.applied if item.onboarding)
        return counts

    def held(self) -> list[AppliedSnapshot]:
        return [item for item in self.applied if item.result == "held"]


@dataclass(frozen=True)
class _Mapped:
    user: ClerkUser
    row: dict[str, Any]
    problems: list[dict[str, str]]


def apply_page(
    work: UnitOfWork, users: Sequence[dict[str, Any]], *, dry_run: bool = False
) -> PageOutcome:
    """Apply a page of API users; with `dry_run`, only say what applying would do."""
    outcome = PageOutcome()
    mapped: dict[str, _Mapped] = {}
    for raw in users:
        item = _map(raw)
        if isinstance(item, AppliedSnapshot):
            outcome.applied.append(item)
        else:
            mapped[item.user.id] = item
    rows, later = user_batches.distinct_rows([item.row for item in mapped.values()])
    session = work.session
    if dry_run:
        found = user_batches.standings(session, rows)
        outcome.applied += [_as_applied(clerk_id, s) for clerk_id, s in found.items()]
        outcome.applied += [AppliedSnapshot(row["clerk_id"], "held") for row in later]
        return outcome
    lock_users(session, sorted(mapped))
    written = _write(work, rows)
    unwritten = [row for row in rows if row["clerk_id"] not in written]
    found = user_batches.standings(session, unwritten)
    for row in later:  # one at a time: each may hold an address the one before let go
        written |= _write(work, [row])
        if row["clerk_id"] not in written:
            found |= user_batches.standings(session, [row])
    for clerk_id, change in written.items():
        work.arrived_users.add(clerk_id)
        outcome.applied.append(AppliedSnapshot(clerk_id, change.change, change.user_id))
    outcome.applied += [_as_applied(clerk_id, s) for clerk_id, s in found.items()]
    outcome.applied = _migrate_onboarding(work, outcome.applied, mapped)
    state.queue_released(work)
    return outcome


def apply_snapshot(work: UnitOfWork, user: dict[str, Any]) -> AppliedSnapshot:
    """Apply one API user (a first request, `clerk sync-user`)."""
    return apply_page(work, [user]).applied[0]


def _map(raw: dict[str, Any]) -> _Mapped | AppliedSnapshot:
    """The user's row, or why it cannot have one (named fields, never values)."""
    clerk_id = str(raw.get("id") or "?")[:255]
    problems = unstorable.problems_of(raw)
    elsewhere = unstorable.outside_unsafe_metadata(problems) if problems else []
    if elsewhere:
        return AppliedSnapshot(clerk_id, "failed", reason=unstorable.describe(elsewhere))
    try:
        user = ClerkUser.model_validate(raw)
    except ValidationError as error:
        return AppliedSnapshot(clerk_id, "failed", reason=describe_validation_error(error))
    row = user_values(user, None)
    if row is None:
        return AppliedSnapshot(user.id, "failed", reason=NO_EMAIL)
    return _Mapped(user, row, problems)


def _write(work: UnitOfWork, rows: list[dict[str, Any]]) -> dict[str, user_batches.Written]:
    """The batch in one statement; row by row when a concurrent transaction took an address
    meanwhile (each row in its own savepoint: the others still land)."""
    try:
        with work.savepoint():
            return user_batches.upsert_users(work.session, rows)
    except Exception as error:
        if len(rows) == 1 or not isinstance(error, IntegrityError):
            raise
    written: dict[str, user_batches.Written] = {}
    for row in rows:
        try:
            with work.savepoint():
                written |= user_batches.upsert_users(work.session, [row])
        except Exception as error:
            if not isinstance(error, IntegrityError):
                raise
    return written


def _as_applied(clerk_id: str, found: user_batches.RowStanding) -> AppliedSnapshot:
    if found.standing == "held":
        reason = HELD.format(holder=found.holder)
        return AppliedSnapshot(clerk_id, "held", found.user_id, reason, holder=found.holder)
    return AppliedSnapshot(clerk_id, found.standing, found.user_id)


def _migrate_onboarding(
    work: UnitOfWork, applied: list[AppliedSnapshot], mapped: dict[str, _Mapped]
) -> list[AppliedSnapshot]:
    """Migrate the onboarding of the page's stored users that carry data never migrated
    (one query finds those already migrated)."""
    pending = [
        (item, mapped[item.clerk_id].user.onboarding)
        for item in applied
        if item.user_id is not None
        and item.result in ("created", "updated", "unchanged")
        and item.clerk_id in mapped
        and mapped[item.clerk_id].user.onboarding is not None
    ]
    if not pending:
        return applied
    data_ids = [session_data_id_of(onboarding) for _, onboarding in pending]
    migrated = set(
        work.session.execute(
            _MIGRATED,
            {
                "kind": MIGRATION_TYPE,
                "clerk_ids": [item.clerk_id for item, _ in pending],
                "data_ids": data_ids,
            },
        )
    )
    statuses: dict[str, str] = {}
    for (item, onboarding), data_id in zip(pending, data_ids, strict=True):
        if (item.clerk_id, data_id) in migrated or item.user_id is None:
            continue
        problems = mapped[item.clerk_id].problems
        try:
            with work.savepoint():
                migration = migrate_user_onboarding(
                    work, item.user_id, item.clerk_id, onboarding, problems
                )
        except Exception as error:  # one user's migration never stops the page
            if is_transient(error):
                raise
            log.warning(
                "clerk_sync.onboarding_error", clerk_id=item.clerk_id, error=type(error).__name__
            )
            statuses[item.clerk_id] = "failed"
            continue
        statuses[item.clerk_id] = migration.status
    return [
        replace(item, onboarding=statuses[item.clerk_id]) if item.clerk_id in statuses else item
        for item in applied
    ]
