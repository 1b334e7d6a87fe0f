"""What the features' `cpn-sync` commands share: an engine for one command, and how a time is
shown in a command's table."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

from cpn_sync.settings import get_settings
from db.engine import make_engine


@contextmanager
def command_engine() -> Iterator[Engine]:
    """An engine for one command (`events`, `onboarding`, `cpn`), disposed after it. A missing
    DATABASE_URL or an error of the database reaches the command group, which prints it in one
    line without row values (`cpn_sync.command_errors`)."""
    engine = make_engine(get_settings().require_database_url())
    try:
        yield engine
    finally:
        engine.dispose()


def utc_text(value: dt.datetime | None) -> str:
    """A time for a command's table: UTC, to the second; `-` for none."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"
