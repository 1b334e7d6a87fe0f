"""The one advisory-lock module: PostgreSQL advisory locks, held until the end of the current
transaction (a long job's: until released), for Clerk users (events, onboarding import and
rollback) and scheduled jobs (the schedule guard, the walks over Clerk's users).

Keys use the two-integer form: the first names a key space, the second is `hashtext` of the
name. A hash collision only serializes two unrelated users or jobs; it never breaks anything.
Lock order: a task takes its user lock before any row lock, so two tasks never wait on each
other in opposite orders.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, func, text
from sqlalchemy.orm import Session

USER_KEY_SPACE = 1  # events of one Clerk user never interleave
JOB_KEY_SPACE = 2  # one run of a scheduled job at a time

_LOCK = text("SELECT pg_advisory_xact_lock(:space, hashtext(:name))")
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:space, hashtext(:name))")
_TRY_HOLD = text("SELECT pg_try_advisory_lock(:space, hashtext(:name))")
_RELEASE = text("SELECT pg_advisory_unlock(:space, hashtext(:name))")


def user_lock(clerk_id: ColumnElement[Any]) -> ColumnElement[Any]:
    """The lock as an SQL expression, to take it in the statement that reads the user id.
    A NULL id takes no lock (the function is strict)."""
    return func.pg_advisory_xact_lock(USER_KEY_SPACE, func.hashtext(clerk_id))


def lock_user(session: Session, clerk_id: str) -> None:
    """Wait until no other transaction works on this Clerk user."""
    session.execute(_LOCK, {"space": USER_KEY_SPACE, "name": clerk_id})


def lock_users(session: Session, clerk_ids: list[str]) -> None:
    """Wait for every lock, one after the other in the order given (one round trip).

    Callers pass the ids sorted: two tasks that lock overlapping sets then wait on each other
    in one order only, and never deadlock."""
    if clerk_ids:
        session.execute(
            text(
                "SELECT pg_advisory_xact_lock(:space, hashtext(name)) "
                "FROM unnest(CAST(:names AS text[])) name"
            ),
            {"space": USER_KEY_SPACE, "names": clerk_ids},
        )


def try_lock_users(session: Session, clerk_ids: list[str]) -> list[bool]:
    """Try every lock at once (one round trip); answer, in order, which were taken."""
    if not clerk_ids:
        return []
    taken = session.execute(
        text(
            "SELECT pg_try_advisory_xact_lock(:space, hashtext(name)) "
            "FROM unnest(CAST(:names AS text[])) WITH ORDINALITY AS t(name, n) ORDER BY n"
        ),
        {"space": USER_KEY_SPACE, "names": clerk_ids},
    ).scalars()
    return [bool(value) for value in taken]


def try_hold_job(connection: Connection, job_name: str) -> bool:
    """Like `try_lock_job`, for a job that spans many transactions (a walk over every Clerk
    user): the lock is held by the connection until `release_job` or until it closes."""
    return bool(connection.execute(_TRY_HOLD, {"space": JOB_KEY_SPACE, "name": job_name}).scalar())


def release_job(connection: Connection, job_name: str) -> None:
    connection.execute(_RELEASE, {"space": JOB_KEY_SPACE, "name": job_name})


def try_lock_job(session: Session, job_name: str) -> bool:
    """True when this transaction now holds the job's lock; False when another run holds it."""
    return bool(session.execute(_TRY_LOCK, {"space": JOB_KEY_SPACE, "name": job_name}).scalar())
