"""The one SQLAlchemy engine of a worker process (tasks, scheduled jobs and the worker-side
commands all use it), and its sessions.

Created on first use, so after the prefork fork, in the child; `dispose_engine_after_fork`
drops what a child inherited.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cpn_sync.settings import get_settings
from db.engine import make_engine

_engine: Engine | None = None


def get_engine() -> Engine:
    """The process's engine, created on first use (after the prefork fork, in a child)."""
    global _engine
    if _engine is None:
        settings = get_settings()
        _engine = make_engine(
            settings.require_database_url(),
            pool_size=settings.db_pool_size,
            pool_recycle=1800,
        )
    return _engine


def dispose_engine_after_fork() -> None:
    """Drop connections inherited from the parent without closing them under its feet."""
    if _engine is not None:
        _engine.dispose(close=False)


def close_engine() -> None:
    """Close the process's connections (at exit; a later use opens new ones)."""
    global _engine
    if _engine is not None:
        _engine.dispose()
        _engine = None


def new_session() -> Session:
    """Sessions keep loaded values after commit, so a task can log what it wrote."""
    return Session(get_engine(), expire_on_commit=False)
