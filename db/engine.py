"""Engines and sessions. One engine per process; callers own their transactions.

Every engine hides bound parameters from its error messages (`hide_parameters`): an error
must never carry a row's values (emails, names, IP addresses, share tokens) into a log line,
a task event or `last_error`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def make_engine(url: str, **options: Any) -> Engine:
    """A pooled engine that survives a restarted server (`pool_pre_ping`)."""
    options.setdefault("pool_pre_ping", True)
    options["hide_parameters"] = True  # never a choice of the caller
    return create_engine(url, **options)


def make_async_engine(url: str, **options: Any) -> AsyncEngine:
    options.setdefault("pool_pre_ping", True)
    options["hide_parameters"] = True  # never a choice of the caller
    return create_async_engine(url, **options)
