"""Alembic environment: runs on the connection `db.migrate.upgrade` hands over, or on the URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import db.clerk_sync  # registers its table on the metadata, as db.models does
import db.me_sync  # registers its table on the metadata, as db.models does
import db.models  # noqa: F401
from db.base import Base
from db.engine import make_engine

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
