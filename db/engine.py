"""Engines and sessions. One engine per process; callers own their transactions.

Every engine hides bound parameters from its error messages (`hide_parameters`): an error
must never carry a row's values (emails, names, IP addresses, share tokens) into a log line,
a task event or `last_error`.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def _defaults(options: dict[str, Any]) -> dict[str, Any]:
    """`pool_pre_ping`: survive a restarted server. JSON columns are decoded by orjson, the
    decoder of the web, so every process accepts the same documents (nesting up to 1024
    levels; psycopg's default, the stdlib's `json.loads`, raises RecursionError near 1000)."""
    options.setdefault("pool_pre_ping", True)
    options.setdefault("json_deserializer", orjson.loads)
    options["hide_parameters"] = True  # never a choice of the caller
    return options


def make_engine(url: str, **options: Any) -> Engine:
    return create_engine(url, **_defaults(options))


def make_async_engine(url: str, **options: Any) -> AsyncEngine:
    return create_async_engine(url, **_defaults(options))
