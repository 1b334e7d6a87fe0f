"""One line, never a traceback: how every `cpn-sync` subcommand reports a server that does not
answer, a refused login, a missing schema or a setting it cannot use (DESIGN.md section 8).

The command group catches these in one place and prints `Error: <what> at <where>: <why>` with
exit status 1. `<where>` comes from the settings' URLs (host, port, database), never from the
error's message, which may quote row values; a password never appears.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import click
import psycopg
import psycopg.errors
import redis.exceptions
import sqlalchemy.exc
from kombu.exceptions import OperationalError as BrokerOperationalError
from sqlalchemy.engine import make_url

from cpn_sync.db_errors import describe_database_error, exception_chain, is_database_error
from cpn_sync.settings import Settings, SettingsError, get_settings

# What a login refusal looks like in libpq's message (no SQLSTATE reaches a failed connect).
_REFUSED_LOGIN = ("password authentication failed", "no password supplied", "no pg_hba.conf")
_NOT_ANSWERING = ("Connection refused", "timeout expired", "No such file or directory")
_UNKNOWN_HOST = ("could not translate host name", "Name or service not known")


def database_location(url: str | None) -> str:
    """`host:port/dbname` of a database URL, without user or password."""
    if not url:
        return "(DATABASE_URL not set)"
    try:
        parsed = make_url(url)
    except Exception:
        return "(DATABASE_URL)"
    host = parsed.host or str(parsed.query.get("host", "localhost"))
    return f"{host}:{parsed.port or 5432}/{parsed.database or ''}"


def server_location(url: str | None) -> str:
    """`scheme://host:port/path` of a Redis or AMQP URL, without user or password."""
    if not url:
        return "(not set)"
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or 'localhost'}{port}{parts.path}"


def _database_line(error: BaseException, settings: Settings | None) -> str:
    where = database_location(settings.database_url if settings else None)
    original = error.orig if isinstance(error, sqlalchemy.exc.DBAPIError) else error
    if isinstance(original, psycopg.errors.UndefinedTable):
        return f"the database {where} has no cpn-sync schema: run `cpn-sync migrate`"
    if isinstance(original, psycopg.OperationalError) and original.sqlstate is None:
        message = str(original)
        if any(marker in message for marker in _REFUSED_LOGIN):
            return f"PostgreSQL at {where} refused the login (user or password in DATABASE_URL)"
        if "does not exist" in message:
            return f"PostgreSQL at {where}: the database does not exist"
        if any(marker in message for marker in _UNKNOWN_HOST):
            return f"PostgreSQL at {where}: unknown host"
        reason = next((marker for marker in _NOT_ANSWERING if marker in message), "no answer")
        return f"PostgreSQL at {where} does not answer ({reason})"
    return f"database error at {where}: {describe_database_error(error)}"


def _broker_line(settings: Settings | None) -> str:
    where = server_location(settings.broker_url if settings else None)
    return f"the broker at {where} does not answer"


def _redis_line(settings: Settings | None) -> str:
    return f"Redis at {server_location(settings.redis_url if settings else None)} does not answer"


def one_line(error: BaseException, safe_errors: tuple[type[BaseException], ...]) -> str | None:
    """The line that says what went wrong, or None for an error nobody expected (a bug, whose
    traceback is worth seeing)."""
    try:
        settings: Settings | None = get_settings()
    except SettingsError:
        settings = None
    for link in exception_chain(error):
        if isinstance(link, (SettingsError, *safe_errors)):
            return str(link)
        if is_database_error(link):
            return _database_line(link, settings)
        if isinstance(link, BrokerOperationalError):
            return _broker_line(settings)
        if isinstance(link, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            return _redis_line(settings)
    return None


class OneLineErrors(click.Group):
    """A command group that turns the errors an operator can fix into one `Error:` line.

    `safe_errors`: exception classes whose message is written to be shown as it is (no
    secret, no personal value), e.g. the Clerk API client's; the composition root adds them.
    """

    safe_errors: tuple[type[BaseException], ...] = ()

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            line = one_line(error, self.safe_errors)
            if line is None:
                raise
            raise click.ClickException(line) from None
