"""`cpn-sync sessions import`: many users' session data from a JSON Lines export, one line at
a time, each line in a transaction of its own.

A line is `{"clerk_id", "email", "sessionData": {"profile": ..., "dataEntry": ...}}`, the
arguments of the seed's `migrateSessionToUser`. A user that does not exist yet is created from
`clerk_id` and `email` (verified, as the seed does). A bad line is reported and the import goes
on; the database becoming unreachable stops it (the lines before are committed, and a second
run skips them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

from psycopg import errors as pg_errors
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from db.models import User
from workers.core.locks import lock_user
from workers.onboarding.data_migration import MigrationOutcome, migrate_session_data
from workers.onboarding.validation import describe, field_errors_of, text_rule
from workers.users.user_events import is_deleted

EMAIL_TAKEN = "its email address already belongs to another user"
USER_DELETED = "the user was deleted in Clerk (deleted_users); a deleted user is not created again"


class ImportLine(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    clerk_id: Annotated[str, text_rule(255, required=True)]
    email: Annotated[str, text_rule(255, required=True)]
    session_data: Any = Field(alias="sessionData")


class LineRejected(Exception):  # noqa: N818 - reads as what happened to the line
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ImportAborted(Exception):  # noqa: N818
    """The database stopped answering at `line`; the lines before it are committed."""

    def __init__(self, line: int) -> None:
        super().__init__(f"the database became unreachable at line {line}")
        self.line = line


@dataclass(frozen=True)
class LineFailure:
    line: int
    reason: str


@dataclass
class ImportReport:
    migrated: int = 0
    skipped: int = 0
    failures: list[LineFailure] = field(default_factory=list)


def import_lines(
    session: Session,
    lines: Iterable[tuple[int, bytes]],
    after_commit: Callable[[int], None],
) -> ImportReport:
    """Import numbered lines; `after_commit(user_id)` runs once a line's migration committed.
    Blank lines are passed over."""
    report = ImportReport()
    for number, raw in lines:
        if not raw.strip():
            continue
        try:
            user_id, outcome = _import_line(session, raw)
            session.commit()
        except LineRejected as rejected:
            session.rollback()
            report.failures.append(LineFailure(number, rejected.reason))
            continue
        except (OperationalError, InterfaceError) as error:
            session.rollback()
            raise ImportAborted(number) from error
        except DBAPIError as error:
            session.rollback()
            reason = f"the database refused it ({type(error.orig).__name__})"
            report.failures.append(LineFailure(number, reason))
            continue
        if outcome.status == "completed":
            report.migrated += 1
            after_commit(user_id)
        elif outcome.status == "skipped":
            report.skipped += 1
        else:
            reason = f"{outcome.error_message} (data migration {outcome.migration_id})"
            report.failures.append(LineFailure(number, reason))
    return report


def _import_line(session: Session, raw: bytes) -> tuple[int, MigrationOutcome]:
    try:
        document = json.loads(raw.rstrip(b"\r\n"))
    except UnicodeDecodeError:
        raise LineRejected("not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise LineRejected(f"not valid JSON ({error.msg} at column {error.colno})") from None
    try:
        line = ImportLine.model_validate(document)
    except ValidationError as error:
        errors = field_errors_of(error, lambda loc: ".".join(map(str, loc)) or "line")
        raise LineRejected(describe(errors)) from None
    # The user's events wait meanwhile (and this line waits for an event in progress).
    lock_user(session, line.clerk_id)
    if is_deleted(session, line.clerk_id):
        raise LineRejected(USER_DELETED)
    user_id = _existing_or_new_user(session, line)
    outcome = migrate_session_data(
        session, clerk_id=line.clerk_id, user_id=user_id, onboarding=line.session_data
    )
    return user_id, outcome


def _existing_or_new_user(session: Session, line: ImportLine) -> int:
    """The user's id, creating the user when needed.

    A created user has no `updated_at`: Clerk's own `user.created` / `user.updated` events are
    versioned by it, and must still fill in the names and image when they arrive.
    """
    created = (
        insert(User)
        .values(clerk_id=line.clerk_id, email=line.email, email_verified=True, updated_at=None)
        .on_conflict_do_nothing(constraint="unique_clerk_id")
        .returning(User.id)
    )
    try:
        with session.begin_nested():
            user_id = session.scalar(created)
    except IntegrityError as error:
        cause = error.orig
        if isinstance(cause, pg_errors.UniqueViolation) and (
            cause.diag.constraint_name == "unique_email"
        ):
            raise LineRejected(EMAIL_TAKEN) from None
        raise
    if user_id is None:
        user_id = session.scalar(select(User.id).where(User.clerk_id == line.clerk_id))
    assert user_id is not None, "ON CONFLICT matched a user that is not there"
    return user_id
