"""What the features' `cpn-sync` commands share: an engine for one command, and how a time is
shown in a command's table."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy import Engine

from cpn_sync.settings import SettingsError, get_settings
from db.engine import make_engine


@contextmanager
def command_engine() -> Iterator[Engine]:
    """An engine for one command (`events`, `onboarding`, `cpn`); a missing
    DATABASE_URL is a one-line error."""
    try:
        url = get_settings().require_database_url()
    except SettingsError as error:
        raise click.ClickException(str(error)) from error
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def utc_text(value: dt.datetime | None) -> str:
    """A time for a command's table: UTC, to the second; `-` for none."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"
