"""What the features' `cpn-sync` commands share: an engine for one command, and how a time is
shown in a command's table."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy import Engine

from cpn_sync.db_errors import describe_database_error, is_database_error
from cpn_sync.settings import SettingsError, get_settings
from db.engine import make_engine


@contextmanager
def command_engine() -> Iterator[Engine]:
    """An engine for one command (`events`, `onboarding`, `cpn`); a missing
    DATABASE_URL, or an error of the database, is a one-line error without row values."""
    try:
        url = get_settings().require_database_url()
    except SettingsError as error:
        raise click.ClickException(str(error)) from error
    engine = make_engine(url)
    try:
        yield engine
    except Exception as error:
        if not is_database_error(error):
            raise
        # One line, never a traceback: psycopg's message may quote a row's values.
        description = describe_database_error(error)
        raise click.ClickException(f"database error: {description}") from None
    finally:
        engine.dispose()


def utc_text(value: dt.datetime | None) -> str:
    """A time for a command's table: UTC, to the second; `-` for none."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"
