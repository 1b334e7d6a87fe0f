"""Database errors without the values of any row (DESIGN.md section 6: no row value ever
appears in an error, a log line or a task event).

Every engine sets `hide_parameters=True` (`db.engine`), so SQLAlchemy leaves the bound values
out of its messages; psycopg's own message still quotes them (`Key (email)=(...) already
exists` in the DETAIL line, `invalid input syntax for type ...: "..."` in the primary one). What
leaves a process (a log line, `last_error`, a task's retry or failure, a command's output) is
described here by its class, SQLSTATE and constraint or column name only.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator, MutableMapping
from typing import Any

import psycopg
import sqlalchemy.exc


class ScrubbedDatabaseError(Exception):
    """What a task raises (or retries with) in place of a database error."""


def is_database_error(error: BaseException) -> bool:
    return isinstance(error, sqlalchemy.exc.DBAPIError | psycopg.Error)


def describe_database_error(error: BaseException) -> str:
    """SQLSTATE and constraint or column name: the DETAIL line may quote values, so it is
    left out."""
    original = error.orig if isinstance(error, sqlalchemy.exc.DBAPIError) else error
    if not isinstance(original, psycopg.Error) or original.sqlstate is None:
        return type(original).__name__  # e.g. a connection refused: no server message
    diag = original.diag
    words = [type(original).__name__, f"SQLSTATE {original.sqlstate}"]
    if diag.constraint_name:
        words.append(f"constraint {diag.constraint_name}")
    if diag.column_name:
        words.append(f"column {diag.column_name}")
    return " ".join(words)


def without_values(error: Exception) -> Exception:
    """The error itself when it is not a database error; else one that names only its class,
    SQLSTATE and constraint or column."""
    if not is_database_error(error):
        return error
    return ScrubbedDatabaseError(f"{type(error).__name__}: {describe_database_error(error)}")


def exception_chain(error: BaseException) -> Iterator[BaseException]:
    """The error, then its causes and contexts, each once."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def scrub_exc_info(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A log processor (before `format_exc_info`): a traceback whose exception chain holds a
    database error keeps its frames (code lines, no values) and loses every message."""
    exc_info = event_dict.get("exc_info")
    if not exc_info:
        return event_dict
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    error = exc_info[1] if isinstance(exc_info, tuple) else None
    if error is None:
        return event_dict
    database_errors = [link for link in exception_chain(error) if is_database_error(link)]
    if not database_errors:
        return event_dict
    frames = "".join(traceback.format_tb(error.__traceback__))
    description = describe_database_error(database_errors[0])
    event_dict.pop("exc_info")
    event_dict["exception"] = (
        f"Traceback (most recent call last):\n{frames}{type(error).__name__}: "
        f"{type(database_errors[0]).__name__}: {description} (message left out)"
    )
    return event_dict
