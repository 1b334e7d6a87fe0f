"""What the web process (publisher) and the workers (consumers) must agree on: task names,
queues and broker options. The web enqueues by these names and never imports task code."""

from __future__ import annotations

from typing import Any

from cpn_sync.settings import Settings

QUEUES = ("webhooks", "cpn", "maintenance")

# Task names: `<queue>.<what>`; the route of each follows from its prefix.
PROCESS_EVENT = "webhooks.process_event"
CPN_RECOMPUTE_USER = "cpn.recompute_user"
CPN_RECOMPUTE_CHUNK = "cpn.recompute_chunk"
CPN_RECOMPUTE_ALL = "cpn.recompute_all"
CPN_SCAN_DIRTY = "cpn.scan_dirty"

# Redis re-delivers a message not acknowledged within this many seconds. Every countdown, retry
# delay and time limit stays far below it (shared/NOTES.md).
VISIBILITY_TIMEOUT = 3600


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration both sides use; the workers add their own settings on top."""
    transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT}
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.redis_url,
        "broker_transport_options": transport_options,
        "result_backend_transport_options": transport_options,
        "visibility_timeout": VISIBILITY_TIMEOUT,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "task_routes": {f"{queue}.*": {"queue": queue} for queue in QUEUES},
        "task_default_queue": "webhooks",
    }
