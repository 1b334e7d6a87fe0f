"""Which failures are worth a retry (the one transient-error list), and how errors are
described without personal data.

Messages name fields, ids and reasons, never the values of personal fields: they are stored in
`webhook_events.last_error` and appear in logs.
"""

from __future__ import annotations

import orjson
import psycopg.errors
import redis.exceptions
import sqlalchemy.exc
from celery.exceptions import SoftTimeLimitExceeded
from kombu.exceptions import OperationalError as BrokerOperationalError
from pydantic import ValidationError

from cpn_sync.db_errors import describe_database_error, without_values

__all__ = [
    "TRANSIENT_ERRORS",
    "describe_database_error",
    "describe_validation_error",
    "is_transient",
    "is_unique_violation",
    "without_values",
]

# Raised by the database or the broker while it is unreachable, restarting, or resolving a
# conflict between concurrent transactions: the same work may succeed a little later.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,  # connection lost/refused, serialization, deadlock
    sqlalchemy.exc.TimeoutError,  # pool exhausted
    sqlalchemy.exc.InterfaceError,
    psycopg.OperationalError,
    BrokerOperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    SoftTimeLimitExceeded,
    ConnectionError,
)


def is_transient(error: BaseException) -> bool:
    if isinstance(error, TRANSIENT_ERRORS):
        return True
    return isinstance(error, sqlalchemy.exc.DBAPIError) and bool(error.connection_invalidated)


def describe_validation_error(error: ValidationError, prefix: str | None = None) -> str:
    """`data.email_addresses.0.email_address: String should have at most 255 characters`;
    the offending values are left out."""
    parts = []
    for item in error.errors(include_input=False, include_url=False):
        path = [prefix, *item["loc"]] if prefix else item["loc"]
        location = ".".join(str(part) for part in path) or "payload"
        parts.append(f"{location}: {item['msg']}")
    return "; ".join(parts)


def is_unique_violation(error: sqlalchemy.exc.IntegrityError, constraint: str) -> bool:
    original = error.orig
    return (
        isinstance(original, psycopg.errors.UniqueViolation)
        and original.diag.constraint_name == constraint
    )


# orjson, the one JSON decoder of every process (the web's and the engines'), refuses deeper
# nesting than this.
JSON_MAX_DEPTH = 1024


def describe_json_error(error: orjson.JSONDecodeError) -> str:
    """Why a stored JSON text cannot be decoded, in our own words (the library's message is not
    a contract, and a position is all it would add)."""
    message = str(error)
    if "depth" in message or "recursion" in message:
        return f"nested deeper than {JSON_MAX_DEPTH} levels"
    if "infinity" in message:
        return "a number outside the double range"
    return "not valid JSON"
