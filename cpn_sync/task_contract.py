"""What the web process (publisher) and the workers (consumers) must agree on: task names,
queues and broker options. The web enqueues by these names and never imports task code."""

from __future__ import annotations

from typing import Any

from cpn_sync.settings import Settings

QUEUES = ("webhooks", "cpn", "maintenance")

# Task names: `<queue>.<what>` (`clerk.*`: the maintenance queue); each is routed explicitly below.
PROCESS_EVENT = "webhooks.process_event"  # args: [webhook_events.id] (sweeper: [id, true])
# What the web sends: the ids of the events it stored within a few milliseconds, one message
# for up to EVENT_BATCH_SIZE of them. args: [[webhook_events.id, ...]]
PROCESS_EVENTS = "webhooks.process_events"
# First-request sync (DESIGN.md section 10): one stored call. args: [me_sync_requests.id]
SYNC_ME = "webhooks.sync_me"
SWEEP_INBOX = "maintenance.sweep_inbox"
EXPIRE_SESSIONS = "maintenance.expire_sessions"
REDACT_PAYLOADS = "maintenance.redact_payloads"
CPN_RECOMPUTE_USER = "cpn.recompute_user"
CPN_RECOMPUTE_CHUNK = "cpn.recompute_chunk"
CPN_RECOMPUTE_ALL = "cpn.recompute_all"
CPN_SCAN_DIRTY = "cpn.scan_dirty"
# A user revokes their share links: every result gets a new token. args: [users.id]
CPN_REVOKE_SHARE = "cpn.revoke_share"
# Convergence with Clerk's Backend API (DESIGN.md section 9), on the maintenance queue.
CLERK_BACKFILL = "clerk.backfill"  # `cpn-sync clerk backfill --enqueue`; args: []
CLERK_SYNC_RECENT = "clerk.sync_recent"
CLERK_RECONCILE = "clerk.reconcile"
# One canary per queue: beat sends it, a worker consuming that queue records when it ran.
WEBHOOKS_CANARY = "webhooks.canary"
CPN_CANARY = "cpn.canary"
MAINTENANCE_CANARY = "maintenance.canary"
CANARIES = {"webhooks": WEBHOOKS_CANARY, "cpn": CPN_CANARY, "maintenance": MAINTENANCE_CANARY}

TASK_QUEUES = {
    PROCESS_EVENT: "webhooks",
    PROCESS_EVENTS: "webhooks",
    SYNC_ME: "webhooks",
    SWEEP_INBOX: "maintenance",
    EXPIRE_SESSIONS: "maintenance",
    REDACT_PAYLOADS: "maintenance",
    CPN_RECOMPUTE_USER: "cpn",
    CPN_RECOMPUTE_CHUNK: "cpn",
    CPN_RECOMPUTE_ALL: "cpn",
    CPN_SCAN_DIRTY: "cpn",
    CPN_REVOKE_SHARE: "cpn",
    CLERK_BACKFILL: "maintenance",
    CLERK_SYNC_RECENT: "maintenance",
    CLERK_RECONCILE: "maintenance",
    WEBHOOKS_CANARY: "webhooks",
    CPN_CANARY: "cpn",
    MAINTENANCE_CANARY: "maintenance",
}

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
        # Explicit routes for the known tasks; the prefix rule covers tasks other issues add.
        "task_routes": [
            {name: {"queue": queue} for name, queue in TASK_QUEUES.items()},
            {f"{queue}.*": {"queue": queue} for queue in QUEUES},
        ],
        "task_default_queue": "webhooks",
    }
