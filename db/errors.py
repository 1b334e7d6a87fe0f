"""Typed errors of the query functions: each carries the ids and fields a caller needs."""

from __future__ import annotations


class QueryError(Exception):
    """Base of every error `db.queries` raises on purpose."""


class UserNotFound(QueryError):  # noqa: N818 - the name the issue and callers use
    """No `users` row has this Clerk id (yet: a webhook may still be on its way)."""

    def __init__(self, clerk_id: str) -> None:
        super().__init__(f"no user with clerk_id {clerk_id!r}")
        self.clerk_id = clerk_id


class InvalidField(QueryError):  # noqa: N818 - reads as what went wrong
    """The database refused a value: `field` is the column, `constraint` the rule it broke."""

    def __init__(self, field: str, value: object, reason: str, constraint: str | None = None):
        super().__init__(f"{field} = {value}: {reason}")
        self.field = field
        self.value = value
        self.reason = reason
        self.constraint = constraint
