"""Bring a database to the newest Alembic revision, safely from several hosts at once."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from db.engine import make_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# pg_advisory_lock key for `upgrade head`: any constant shared by every host; this one spells
# "cpnmigr" in ASCII.
MIGRATION_LOCK_KEY = 0x63706E6D696772


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str, revision: str = "head") -> str | None:
    """Run `alembic upgrade` under a session-level advisory lock; answer the revision reached.

    A second host that runs this at the same time waits for the lock, then finds nothing to do.
    """
    engine = make_engine(url, poolclass=None)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
            try:
                config = alembic_config(url)
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                connection.commit()
                return current_revision(connection)
            finally:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
                connection.commit()
    finally:
        engine.dispose()
