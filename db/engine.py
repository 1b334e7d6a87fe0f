"""Engines and sessions. One engine per process; callers own their transactions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def make_engine(url: str, **options: Any) -> Engine:
    """A pooled engine that survives a restarted server (`pool_pre_ping`)."""
    options.setdefault("pool_pre_ping", True)
    return create_engine(url, **options)


def make_async_engine(url: str, **options: Any) -> AsyncEngine:
    options.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **options)
