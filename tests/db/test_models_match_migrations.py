"""The models (`db.models`) and the migrations describe the same schema, so neither can drift."""

from __future__ import annotations

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

import db.clerk_sync  # registers its table on the metadata, as db.models does
import db.me_sync  # registers its table on the metadata, as db.models does
import db.models  # noqa: F401
from cpn_sync.settings import libpq_url
from db.base import Base
from db.engine import make_engine
from tests.db import catalog
from tests.services import TestServers


def test_alembic_finds_nothing_to_autogenerate(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        differences = compare_metadata(context, Base.metadata)

    assert differences == []


def test_models_create_the_migrated_catalog(test_servers: TestServers, database_url: str) -> None:
    """Alembic's comparison skips CHECK constraints and generation expressions; the catalogs
    do not. (`create_all` builds this one database for the comparison only: every other test
    database is migrated.)"""
    models_url = test_servers.new_database(migrate=False)
    models_engine = make_engine(models_url)
    try:
        Base.metadata.create_all(models_engine)
    finally:
        models_engine.dispose()

    with (
        psycopg.connect(libpq_url(database_url)) as head,
        psycopg.connect(libpq_url(models_url)) as models,
    ):
        tables = catalog.user_tables(head)
        assert catalog.user_tables(models) == tables
        differences = catalog.compare(
            catalog.snapshot(head, tables),
            catalog.snapshot(models, tables),
            names=("migrations", "models"),
        )

    assert [str(difference) for difference in differences] == []
