"""Many user rows in one statement: the versioned upsert of `user_events` for a page of Clerk
users (backfill, reconciliation, the recent sync), and the one query that says why a row was
not written.

The rules are those of `user_events.UPSERT_USER`: a tombstoned id is never written, an address
another user holds is never taken, and Clerk's `updated_at` versions the row. One difference:
a snapshot equal to the stored row (same `updated_at`, same values) rewrites nothing, so a
second backfill over unchanged users changes no row (an event may rewrite an equal row; an
API walk over every user must not).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
from sqlalchemy import TextClause, text
from sqlalchemy.orm import Session

from workers.users.user_events import USER_COLUMNS

# Each column's SQL type in the page's JSON records: the page is one JSON parameter, which
# psycopg sends as it is (nine arrays of 500 values each cost more to adapt than to run).
_RECORD_TYPES: Final = {
    "clerk_id": "text",
    "email": "text",
    "email_verified": "boolean",
    "first_name": "text",
    "last_name": "text",
    "image_url": "text",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
    "last_sign_in_at": "timestamptz",
}
assert tuple(_RECORD_TYPES) == USER_COLUMNS

_COLUMNS = ", ".join(USER_COLUMNS)
_PROPOSED = (
    "proposed AS (SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS p("
    + ", ".join(f"{name} {kind}" for name, kind in _RECORD_TYPES.items())
    + "))"
)
_VALUES = [name for name in USER_COLUMNS if name not in ("clerk_id", "updated_at")]


def _row(alias: str) -> str:
    return "(" + ", ".join(f"{alias}.{name}" for name in _VALUES) + ")"


def _current(snapshot: str) -> str:
    """The stored row `u` already says what the snapshot says, or something newer."""
    return (
        f"(u.updated_at > {snapshot}.updated_at OR (u.updated_at = {snapshot}.updated_at "
        f"AND {_row('u')} IS NOT DISTINCT FROM {_row(snapshot)}))"
    )


_INSERT = (
    f"INSERT INTO users AS u ({_COLUMNS}) SELECT {_COLUMNS} FROM proposed p "
    "WHERE NOT EXISTS (SELECT 1 FROM deleted_users d WHERE d.clerk_id = p.clerk_id) "
    "AND NOT EXISTS (SELECT 1 FROM users h WHERE h.email = p.email AND h.clerk_id <> p.clerk_id) "
    "ON CONFLICT ON CONSTRAINT unique_clerk_id DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in USER_COLUMNS if name != "clerk_id")
    + " WHERE u.updated_at IS NULL OR NOT "
    + _current("excluded")
    + " RETURNING u.clerk_id, u.id, (u.xmax = 0) AS created"
)
# Per proposed row: whether it is tombstoned, the stored row says as much or more, or another
# user holds its address. Beside the insert, the reads see the table as it was before it. The
# stored row is looked up by its index, one row at a time (a LATERAL with LIMIT is never turned
# into a join): a generic plan that guessed 100 proposed rows, with statistics taken while the
# table was small, would otherwise scan every user for each batch.
_STANDING = (
    "EXISTS (SELECT 1 FROM deleted_users d WHERE d.clerk_id = p.clerk_id) AS deleted, "
    f"u.id AS stored_id, coalesce({_current('p')}, false) AS current, "
    "(SELECT h.clerk_id FROM users h WHERE h.email = p.email AND h.clerk_id <> p.clerk_id "
    "LIMIT 1) AS holder "
    "FROM proposed p LEFT JOIN LATERAL ("
    "SELECT * FROM users s WHERE s.clerk_id = p.clerk_id LIMIT 1) u ON true"
)
# Write what the rules allow and say why the rest was not written: one round trip a page.
_UPSERT = text(
    f"WITH {_PROPOSED}, written AS ({_INSERT}) "
    f"SELECT p.clerk_id, w.id, w.created, {_STANDING} "
    "LEFT JOIN written w ON w.clerk_id = p.clerk_id"
)
_STANDINGS = text(f"WITH {_PROPOSED} SELECT p.clerk_id, NULL, NULL, {_STANDING}")

Change = Literal["created", "updated"]
Standing = Literal["deleted", "unchanged", "held", "created", "updated"]


@dataclass(frozen=True)
class Written:
    user_id: int
    change: Change


@dataclass(frozen=True)
class RowStanding:
    """What writing the row would do now, or why it was not written."""

    standing: Standing
    user_id: int | None = None
    holder: str | None = None  # `held`: the Clerk id of the user holding the address


def _records(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """The rows as one JSON text (times in RFC 3339, which `timestamptz` reads exactly)."""
    records = [{name: row[name] for name in USER_COLUMNS} for row in rows]
    return {"rows": orjson.dumps(records).decode()}


def upsert_users(
    session: Session, rows: Sequence[dict[str, Any]]
) -> tuple[dict[str, Written], dict[str, RowStanding]]:
    """Write every row that the rules allow, in one statement; answer the written rows, and
    why each other row was not (`deleted`, `unchanged`, `held`), by Clerk id. Rows must have
    distinct Clerk ids and distinct addresses (`distinct_rows`)."""
    return _run(session, _UPSERT, rows)


def standings(session: Session, rows: Sequence[dict[str, Any]]) -> dict[str, RowStanding]:
    """For each row, in one query: tombstoned, already current, its address held, or what
    writing it would do (`created` or `updated`)."""
    return _run(session, _STANDINGS, rows)[1]


def _run(
    session: Session, statement: TextClause, rows: Sequence[dict[str, Any]]
) -> tuple[dict[str, Written], dict[str, RowStanding]]:
    written: dict[str, Written] = {}
    found: dict[str, RowStanding] = {}
    if not rows:
        return written, found
    for clerk_id, user_id, created, deleted, stored_id, current, holder in session.execute(
        statement, _records(rows)
    ):
        if user_id is not None:
            written[clerk_id] = Written(user_id, "created" if created else "updated")
        elif deleted:
            found[clerk_id] = RowStanding("deleted")
        elif current:
            found[clerk_id] = RowStanding("unchanged", stored_id)
        elif holder is not None:
            found[clerk_id] = RowStanding("held", stored_id, holder)
        else:
            found[clerk_id] = RowStanding("created" if stored_id is None else "updated", stored_id)
    return written, found


def distinct_rows(
    rows: Sequence[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows one statement can write (one per Clerk id, the newest; one per address), and the
    rows left for later (a second user with an address already proposed in this batch)."""
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        kept = newest.get(row["clerk_id"])
        if kept is None or _version(row) >= _version(kept):
            newest[row["clerk_id"]] = row
    batch: list[dict[str, Any]] = []
    later: list[dict[str, Any]] = []
    addresses: set[str] = set()
    for row in newest.values():
        (later if row["email"] in addresses else batch).append(row)
        addresses.add(row["email"])
    return batch, later


def _version(row: dict[str, Any]) -> dt.datetime:
    version: dt.datetime = row["updated_at"]
    return version
