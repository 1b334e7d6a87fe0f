"""Declarative base with deterministic constraint names.

The convention mirrors PostgreSQL's own default names (`users_pkey`, `user_profiles_user_id_fkey`),
so the names the seed's SQL gets implicitly are the names our migrations create. CHECK
constraints must be named explicitly (the seed names each one).
"""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "pk": "%(table_name)s_pkey",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "uq": "%(table_name)s_%(column_0_name)s_key",
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "ck": "%(constraint_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
